#!/bin/sh
# Reference solution of lab 6 (docs/labs/lab6-dump.md): dumps, O_DIRECT and EFAULT.
# Run in `pyphys lab start 6` from the repository root: sh labs/solutions/lab6.sh ; pyphys lab check 6
# $LABDIR is the host directory shared read-write with the guest (9p: it has O_DIRECT).
set -eu
command -v pyphys >/dev/null 2>&1 || pyphys() { python3 -m pyphys "$@"; }
: "${LABDIR:?start the VM with pyphys lab start 6}"

BUF=$(cat /sys/kernel/pyphys/buffer_phys)
pyphys iomem --ram
# step 1: the buffer's page in the three formats
rm -f "$LABDIR"/buffer.*
pyphys dump "$BUF+4096" -f raw -o "$LABDIR/buffer.raw" -q
pyphys dump "$BUF+4096" -f padded -o "$LABDIR/buffer.padded" -q
pyphys dump "$BUF+4096" -f lime -o "$LABDIR/buffer.lime" -q
SHA=$(cut -d' ' -f1 "$LABDIR/buffer.raw.sha256")
[ "$SHA" = "$(sha256sum "$LABDIR/buffer.raw" | cut -d' ' -f1)" ]
hexdump -C -n 64 "$LABDIR/buffer.lime"
ls -ls "$LABDIR"/buffer.*
# step 2: O_DIRECT straight from an mmap of /dev/mem fails with EFAULT, and the way around it
python3 docs/labs/lab6_efault.py "$LABDIR" | tee /tmp/lab6-efault.txt
ERRNO=$(sed -n 's/^2\. O_DIRECT, straight from the mapping: *\([A-Z]*\).*/\1/p' /tmp/lab6-efault.txt)
pyphys dump "$BUF+4096" -f raw --direct -o "$LABDIR/buffer.direct.raw" -q
cmp "$LABDIR/buffer.raw" "$LABDIR/buffer.direct.raw"

cat > /tmp/lab6.txt <<RESULTS
buffer_phys = $BUF
raw_file = $LABDIR/buffer.raw
raw_sha256 = $SHA
padded_file = $LABDIR/buffer.padded
padded_offset = $BUF
lime_file = $LABDIR/buffer.lime
lime_data_offset = 32
direct_file = $LABDIR/buffer.direct.raw
efault_errno = $ERRNO
RESULTS
cat /tmp/lab6.txt
