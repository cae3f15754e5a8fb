#!/bin/sh
# Reference solution of lab 7 (docs/labs/lab7-dma.md): edu's DMA engine copies the module's buffer.
# Run in `pyphys lab start 7` from the repository root: sh labs/solutions/lab7.sh ; pyphys lab check 7
set -eu
command -v pyphys >/dev/null 2>&1 || pyphys() { python3 -m pyphys "$@"; }
BUFFER=/sys/kernel/pyphys/buffer
MASK=0xffffffff   # the lab VM starts edu with dma_mask=0xffffffff
put() { printf '%s' "$2" | dd of=$BUFFER bs=1 seek=$(($1)) conv=notrunc status=none; }
get() { dd if=$BUFFER bs=1 skip=$(($1)) count=$2 status=none; }

# step 1: the device and the buffer
EDU=$(pyphys pci list 1234:11e8 --json | python3 -c "import json,sys; print(json.load(sys.stdin)['devices'][0]['slot'])")
BUF=$(cat /sys/kernel/pyphys/buffer_phys)

# step 2: bus mastering is off until someone turns it on; pyphys refuses and says why
CMD=$(pyphys pci config "$EDU" 0x04 16)
BEFORE=$(printf '%#06x' $((CMD & ~4)))
[ $((CMD & 4)) -eq 0 ] || pyphys pci config "$EDU" 0x04 16 "$BEFORE" --force
if pyphys pci dma "$EDU" to-device "$(printf '%#x' $((BUF + 0x100)))+16" --dma-mask $MASK; then
    echo "lab 7: a DMA with bus mastering off was not refused" >&2
    exit 1
fi
AFTER=$(printf '%#06x' $((BEFORE | 4)))
pyphys pci config "$EDU" 0x04 16 "$AFTER" --force

# step 3: RAM -> device
MSG='Habari kutoka kwa DMA'
put 0x100 "$MSG"
pyphys pci dma "$EDU" to-device "$(printf '%#x' $((BUF + 0x100)))+${#MSG}" --device-offset 0x80 --dma-mask $MASK

# step 4: change the buffer; the device keeps its copy
CHANGED='overwritten by the CPU'
put 0x100 "$CHANGED"

# step 5: device -> RAM, somewhere else in the buffer
ENTRY=$(pyphys pci dma "$EDU" to-ram "$(printf '%#x' $((BUF + 0x800)))+${#MSG}" --device-offset 0x80 \
    --dma-mask $MASK --json | python3 -c "import json,sys; print(json.load(sys.stdin)['journal_ids'][0])")
echo "buffer+0x800 now: $(get 0x800 ${#MSG})"

cat > /tmp/lab7.txt <<RESULTS
edu_slot = $EDU
buffer_phys = $BUF
command_before = $BEFORE
command_after = $AFTER
message_offset = 0x100
message = $MSG
device_offset = 0x80
changed_text = $CHANGED
copy_offset = 0x800
journal_entry = $ENTRY
RESULTS
cat /tmp/lab7.txt
