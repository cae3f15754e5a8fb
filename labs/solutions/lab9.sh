#!/bin/sh
# Reference solution of lab 9 (docs/labs/lab9-page-walk.md): the walk by hand, scripted.
# Run in `pyphys lab start 9` from the repository root: sh labs/solutions/lab9.sh ; pyphys lab check 9
set -eu
command -v pyphys >/dev/null 2>&1 || pyphys() { python3 -m pyphys "$@"; }
state() { python3 -c "import json,sys; print(json.load(open('/tmp/lab9-process.json'))[sys.argv[1]])" "$1"; }
# walkjson PROCESS ADDR KEY: one field of `pyphys walk PROCESS ADDR --json` (only the start and the PAT MSR)
walkjson() { pyphys walk "$1" "$2" --json | python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$3"; }

echo '== step 1: the lab 9 process'
if ! [ -f /tmp/lab9-process.json ] || ! grep -q lab9_process.py "/proc/$(state pid)/cmdline" 2>/dev/null; then
    rm -f /tmp/lab9-process.json
    nohup python3 docs/labs/lab9_process.py >/tmp/lab9-process.log 2>&1 </dev/null &
    i=0; while ! [ -f /tmp/lab9-process.json ]; do
        i=$((i+1)); [ $i -lt 600 ] || { cat /tmp/lab9-process.log; exit 1; }; sleep 0.1
    done
fi
PID=$(state pid); BUFFER=$(printf '%#x' "$(state buffer)"); HUGE=$(printf '%#x' "$(state huge)")

echo '== step 2: where the walk starts, and how many levels'
TOP=$(walkjson "$PID" "$BUFFER" top)
LEVELS=$(walkjson "$PID" "$BUFFER" levels)
PAT_MSR=$(walkjson "$PID" "$BUFFER" pat_msr)
echo "top $TOP, $LEVELS levels, IA32_PAT $PAT_MSR"

# handwalk ADDR: the indices, then each entry read with busybox devmem, the next table's frame
# masked out of bits 12-51, until an entry maps a page (a PTE, or PS set). Prints KEY=VALUE lines.
handwalk() { python3 - "$1" "$TOP" "$LEVELS" <<'PY'
import subprocess, sys
vaddr, table, levels = int(sys.argv[1], 0), int(sys.argv[2], 0), int(sys.argv[3])
shifts = [48, 39, 30, 21, 12][5 - levels:]
idx = [(vaddr >> s) & 511 for s in shifts]
print("INDICES='" + " ".join(map(str, idx)) + "'")
for level, (s, i) in enumerate(zip(shifts, idx)):
    addr = table + 8 * i
    entry = int(subprocess.run(["busybox", "devmem", hex(addr), "64"], capture_output=True, text=True, check=True).stdout, 16)
    print(f"# level {level}: index {i:3d}, entry at {addr:#x} = {entry:#018x}", file=sys.stderr)
    assert entry & 1, f"entry at {addr:#x} not present"
    size = 1 << s
    if s == 12 or entry >> 7 & 1:  # a PTE, or PS: this entry maps the page
        frame = entry & ((1 << 52) - 1) & ~(size - 1)
        print(f"ENTRY_ADDR={addr:#x} ENTRY={entry:#x} PHYS={frame + vaddr % size:#x} SIZE={size}")
        pat = (entry >> (7 if s == 12 else 12) & 1) << 2 | (entry >> 4 & 1) << 1 | (entry >> 3 & 1)
        print(f"PAT_INDEX={pat}")
        break
    table = entry & ((1 << 52) - 1) & ~0xFFF
PY
}

echo '== step 3: the buffer, four (or five) levels by hand'
eval "$(handwalk "$BUFFER")"
PTE_ADDR=$ENTRY_ADDR PTE=$ENTRY BUFFER_PHYS=$PHYS BUF_INDICES=$INDICES
[ "$SIZE" = 4096 ] || { echo "the buffer is not on a 4 KiB page" >&2; exit 1; }
busybox devmem "$BUFFER_PHYS" 32
MEMTYPE=$(python3 -c "import sys; b = int(sys.argv[1], 0) >> 8 * int(sys.argv[2]) & 0xFF
print({0: 'UC', 1: 'WC', 4: 'WT', 5: 'WP', 6: 'WB', 7: 'UC-'}[b])" "$PAT_MSR" "$PAT_INDEX")
echo "PAT index $PAT_INDEX -> $MEMTYPE"

echo '== step 4: the huge region: the walk ends at the PMD'
eval "$(handwalk "$HUGE")"
[ "$SIZE" = 2097152 ] || { echo "the huge region is not on a 2 MiB page" >&2; exit 1; }
HUGE_PMD=$ENTRY HUGE_PHYS=$PHYS

echo '== step 5: the direct map'
BUF_PHYS_MODULE=$(cat /sys/kernel/pyphys/buffer_phys)
BASE=$(pyphys devmem sym:page_offset_base 64 -q)
DIRECT=$(python3 -c "import sys; print(hex(int(sys.argv[1], 0) + int(sys.argv[2], 0)))" "$BASE" "$BUF_PHYS_MODULE")
pyphys walk kernel "$DIRECT"
DIRECT_SIZE=$(walkjson kernel "$DIRECT" page_size)

cat > /tmp/lab9.txt <<RESULTS
pid = $PID
top = $TOP
indices = $BUF_INDICES
pte_addr = $PTE_ADDR
pte_entry = $PTE
buffer_phys = $BUFFER_PHYS
pat_index = $PAT_INDEX
memory_type = $MEMTYPE
huge_pmd_entry = $HUGE_PMD
huge_phys = $HUGE_PHYS
direct_base = $BASE
direct_vaddr = $DIRECT
direct_page_size = $DIRECT_SIZE
RESULTS
cat /tmp/lab9.txt
