#!/bin/sh
# Reference solution of lab 2 (docs/labs/lab2-module-buffer.md): the module's buffer, both ways.
# Run in the lab VM from the repository root: sh labs/solutions/lab2.sh ; pyphys lab check 2
set -eu
command -v pyphys >/dev/null 2>&1 || pyphys() { python3 -m pyphys "$@"; }

# step 1: where is the buffer?
BUF=$(cat /sys/kernel/pyphys/buffer_phys)

# step 2: user space reads what the kernel wrote: word 7 of the pattern, two ways
WORD7=$(pyphys devmem "$(printf '%#x' $((BUF + 0x1c)))" 32 -q)
[ "$WORD7" = "$(busybox devmem "$(printf '%#x' $((BUF + 0x1c)))" 32)" ]

# step 3: user space writes, the kernel reads (sysfs shows the kernel's view of its buffer)
POKE_OFFSET=0x40
POKE_VALUE=0xC0FFEE42
pyphys devmem "$(printf '%#x' $((BUF + POKE_OFFSET)))" 32 "$POKE_VALUE" -q
hexdump -C -s $((POKE_OFFSET)) -n 4 /sys/kernel/pyphys/buffer

# step 4: the kernel writes (sysfs), user space reads it through /dev/mem
MESSAGE_OFFSET=0x100
printf 'hello from the kernel side\0' | dd of=/sys/kernel/pyphys/buffer bs=1 seek=$((MESSAGE_OFFSET)) conv=notrunc 2>/dev/null
MESSAGE=$(pyphys devmem "$(printf '%#x' $((BUF + MESSAGE_OFFSET)))" --range 64 --json -q | python3 -c "
import json,sys; print(bytes.fromhex(json.load(sys.stdin)['data']).split(b'\0')[0].decode())")

cat > /tmp/lab2.txt <<RESULTS
buffer_phys = $BUF
word7_value = $WORD7
poke_offset = $POKE_OFFSET
poke_value = $POKE_VALUE
message_offset = $MESSAGE_OFFSET
message = $MESSAGE
RESULTS
cat /tmp/lab2.txt
