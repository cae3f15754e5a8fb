#!/bin/sh
# Reference solution of lab 4 (docs/labs/lab4-strict-devmem.md), on Debian's STOCK kernel.
# Run in `pyphys lab start 4` from the repository root: sh labs/solutions/lab4.sh ; pyphys lab check 4
# Reloads pyphys.ko with mem_device=1 ($PYPHYS_KO is the module `pyphys lab start` loaded).
set -eu
command -v pyphys >/dev/null 2>&1 || pyphys() { python3 -m pyphys "$@"; }
doctor() { pyphys doctor --json | python3 -c "import json,sys; c={x['name']: x for x in json.load(sys.stdin)}; print(eval(sys.argv[1]))" "$1"; }

REL=$(uname -r)
STRICT=$(sed -n 's/^CONFIG_STRICT_DEVMEM=//p' "/boot/config-$REL")
BUF=$(cat /sys/kernel/pyphys/buffer_phys)

# step 1: the refusal, as busybox devmem reports it
if OUT=$(busybox devmem "$BUF" 32 2>&1); then echo "unexpected: $OUT"; exit 1; fi
echo "busybox devmem $BUF: $OUT"
case "$OUT" in *"Operation not permitted"*) ERRNO=EPERM ;; *"Invalid argument"*) ERRNO=EINVAL ;; *) ERRNO="$OUT" ;; esac

# step 2: pyphys doctor explains
pyphys doctor --no-probe || true
BLOCKER=$(doctor "[n for n, x in c.items() if x['status'] == 'BLOCKED' and n.startswith('CONFIG_')][0]")
PAT=$(doctor "'yes' if c['PAT']['detail'].startswith('active') else 'no'")

# step 3: the module's device gets through
rmmod pyphys
insmod "$PYPHYS_KO" mem_device=1
ls -l /dev/pyphys_mem
WORD0=$(pyphys devmem buffer 32 --backend module -q)

cat > /tmp/lab4.txt <<RESULTS
kernel_release = $REL
strict_devmem = $STRICT
devmem_errno = $ERRNO
pat = $PAT
doctor_blocker = $BLOCKER
module_word0 = $WORD0
RESULTS
cat /tmp/lab4.txt
