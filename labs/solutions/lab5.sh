#!/bin/sh
# Reference solution of lab 5 (docs/labs/lab5-pci.md): edu and ivshmem registers without a driver.
# Run in `pyphys lab start 5` from the repository root: sh labs/solutions/lab5.sh ; pyphys lab check 5
set -eu
command -v pyphys >/dev/null 2>&1 || pyphys() { python3 -m pyphys "$@"; }
list() { pyphys pci list "$1" --json | python3 -c "import json,sys; d=json.load(sys.stdin)['devices'][0]; print(eval(sys.argv[1]))" "$2"; }

# step 1: find the devices
pyphys pci list
EDU=$(list 1234:11e8 "d['slot']")
IVSHMEM=$(list 1af4:1110 "d['slot']")
BAR2_SIZE=$(list 1af4:1110 "hex([b for b in d['bars'] if b['index'] == 2][0]['size'])")

# step 2: edu's registers (QEMU docs/specs/edu.rst)
EDU_ID=$(pyphys pci read "$EDU" 0 0)
pyphys pci write "$EDU" 0 0x04 0x12345678
LIVE_OUT=$(pyphys pci read "$EDU" 0 0x04)
pyphys pci write "$EDU" 0 0x08 6
while [ $(( $(pyphys pci read "$EDU" 0 0x20) & 1 )) -ne 0 ]; do sleep 0.1; done
FACT_OUT=$(( $(pyphys pci read "$EDU" 0 0x08) ))

# step 3: ivshmem -- the host's message at offset 0, ours at 0x100 (a text ending in a carriage return)
HOST=$(pyphys pci read "$IVSHMEM" 2 0 -l 64 --json | python3 -c "
import json,sys; print(bytes.fromhex(json.load(sys.stdin)['data']).split(b'\0')[0].decode())")
pyphys pci write "$IVSHMEM" 2 0x100 --string 'Dunia,vipi?\r'
pyphys pci read "$IVSHMEM" 2 0x100 -l 16

cat > /tmp/lab5.txt <<RESULTS
edu_slot = $EDU
edu_id = $EDU_ID
liveness_in = 0x12345678
liveness_out = $LIVE_OUT
factorial_in = 6
factorial_out = $FACT_OUT
ivshmem_slot = $IVSHMEM
ivshmem_bar2_size = $BAR2_SIZE
host_message = $HOST
guest_message_offset = 0x100
guest_message = "Dunia,vipi?\r"
RESULTS
cat /tmp/lab5.txt
