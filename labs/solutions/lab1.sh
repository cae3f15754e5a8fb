#!/bin/sh
# Reference solution of lab 1 (docs/labs/lab1-pagemap.md): the steps of the lab text, scripted.
# Run in the lab VM from the repository root: sh labs/solutions/lab1.sh ; pyphys lab check 1
set -eu
command -v pyphys >/dev/null 2>&1 || pyphys() { python3 -m pyphys "$@"; }
# pm PID ADDR EXPR...: `pyphys pagemap PID ADDR --json`, then print each Python EXPR of it (d = the JSON)
pm() { _pid=$1 _addr=$2; shift 2; pyphys pagemap "$_pid" "$_addr" --json | python3 -c "
import json,sys; d=json.load(sys.stdin); print(*[eval(e) for e in sys.argv[1:]])" "$@"; }
state() { python3 -c "import json,sys; print(json.load(open('/tmp/lab1-process.json'))[sys.argv[1]])" "$1"; }

echo '== step 1: the lab 1 process (it must outlive this script: no pipes left open)'
if ! [ -f /tmp/lab1-process.json ] || ! grep -q lab1_process.py "/proc/$(state pid)/cmdline" 2>/dev/null; then
    rm -f /tmp/lab1-process.json
    nohup python3 docs/labs/lab1_process.py >/tmp/lab1-process.log 2>&1 </dev/null &
    i=0; while ! [ -f /tmp/lab1-process.json ]; do
        i=$((i+1)); [ $i -lt 600 ] || { cat /tmp/lab1-process.log; exit 1; }; sleep 0.1
    done
fi
PID=$(state pid); CHILD=$(state child_pid)
BUFFER=$(printf '%#x' "$(state buffer)"); HUGE=$(printf '%#x' "$(state huge)")
SHARED=$(printf '%#x' "$(state shared)"); COW=$(printf '%#x' "$(state cow)")

echo '== step 2: the buffer: PFN, physical address, and its text through /dev/mem'
set -- $(pm "$PID" "$BUFFER" "hex(d['pfn'])" "d['phys']")
BUFFER_PFN=$1 BUFFER_PHYS=$2
BUFFER_TEXT=$(pyphys devmem "$BUFFER_PHYS" --range 64 --json -q | python3 -c "
import json,sys; d=json.load(sys.stdin); print(bytes.fromhex(d['data']).split(b'\0')[0].decode())")

echo '== step 3: the huge page'
set -- $(pm "$PID" "$HUGE" "hex(d['pfn'])" "d['huge']['pages']")
HUGE_PFN=$1 HUGE_PAGES=$2

echo '== step 4: fork: the shared page in both processes'
set -- $(pm "$PID" "$SHARED" "hex(d['pfn'])" "'yes' if d['entry']['exclusive'] else 'no'")
SHARED_PFN=$1 SHARED_EXCL=$2
[ "$SHARED_PFN" = "$(pm "$CHILD" "$SHARED" "hex(d['pfn'])")" ]

echo '== step 5: copy-on-write'
COW_BEFORE=$(pm "$PID" "$COW" "hex(d['pfn'])")
[ "$COW_BEFORE" = "$(pm "$CHILD" "$COW" "hex(d['pfn'])")" ]
kill -USR1 "$CHILD"
i=0
while set -- $(pm "$CHILD" "$COW" "hex(d['pfn'])" "'yes' if d['entry']['exclusive'] else 'no'"); [ "$1" = "$COW_BEFORE" ]; do
    i=$((i+1)); [ $i -lt 50 ] || exit 1; sleep 0.2
done
COW_AFTER=$1 COW_EXCL=$2

cat > /tmp/lab1.txt <<RESULTS
pid = $PID
child_pid = $CHILD
buffer_pfn = $BUFFER_PFN
buffer_phys = $BUFFER_PHYS
buffer_text = $BUFFER_TEXT
huge_pfn = $HUGE_PFN
huge_pages = $HUGE_PAGES
shared_pfn = $SHARED_PFN
shared_exclusive = $SHARED_EXCL
cow_pfn_before = $COW_BEFORE
cow_child_pfn_after = $COW_AFTER
cow_exclusive_after = $COW_EXCL
RESULTS
cat /tmp/lab1.txt
