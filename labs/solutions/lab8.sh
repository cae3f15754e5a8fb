#!/bin/sh
# Reference solution of lab 8 (docs/labs/lab8-swap.md): a page to swap and back.
# Run in `pyphys lab start 8` from the repository root: sh labs/solutions/lab8.sh ; pyphys lab check 8
set -eu
command -v pyphys >/dev/null 2>&1 || pyphys() { python3 -m pyphys "$@"; }
field() { pyphys pagemap "$PID" "$VADDR" --json | python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# step 1: the swap disk (the virtio disk whose serial is pyphys-swap), made a swap area and turned on
DEV=
for d in /sys/block/vd*; do
    [ "$(cat "$d/serial" 2>/dev/null)" = pyphys-swap ] && DEV=/dev/${d##*/}
done
[ -n "$DEV" ] || { echo "lab 8: no disk with serial pyphys-swap" >&2; exit 1; }
grep -q "^$DEV " /proc/swaps || { mkswap -f "$DEV" >/dev/null; swapon "$DEV"; }
cat /proc/swaps

# step 2: the process and its page
pkill -f lab8_process.py || true
rm -f /tmp/lab8-process.out /tmp/lab8-process.json
nohup python3 docs/labs/lab8_process.py > /tmp/lab8-process.out 2>&1 </dev/null &
PID=$!
while [ ! -s /tmp/lab8-process.out ]; do sleep 0.1; done
VADDR=$(python3 -c "import json; print(hex(json.load(open('/tmp/lab8-process.json'))['vaddr']))")
pyphys pagemap "$PID" "$VADDR"
PFN_BEFORE=$(field "['pfn']" | python3 -c 'import sys; print(hex(int(sys.stdin.read())))')

# step 3: page it out; the entry now names a swap slot
kill -USR1 "$PID"
while ! grep -q 'paged out' /tmp/lab8-process.out; do sleep 0.1; done
pyphys pagemap "$PID" "$VADDR"
TYPE=$(field "['entry']['swap_type']")
OFFSET=$(field "['entry']['swap_offset']")

# step 4: the page's bytes on the disk (O_DIRECT: what the device holds, not a cached copy)
sleep 1
TEXT=$(dd if="$DEV" bs=4096 skip=$((OFFSET)) count=1 iflag=direct status=none | head -n 1)
echo "on $DEV at page $OFFSET: $TEXT"

# step 5: read it back; it comes back into some frame
kill -USR2 "$PID"
while ! grep -q 'read back' /tmp/lab8-process.out; do sleep 0.1; done
PFN_AFTER=$(field "['pfn']" | python3 -c 'import sys; print(hex(int(sys.stdin.read())))')

cat > /tmp/lab8.txt <<RESULTS
swap_device = $DEV
pid = $PID
vaddr = $VADDR
pfn_before = $PFN_BEFORE
swap_type = $TYPE
swap_offset = $OFFSET
swap_text = $TEXT
pfn_after = $PFN_AFTER
RESULTS
cat /tmp/lab8.txt
