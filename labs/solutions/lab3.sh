#!/bin/sh
# Reference solution of lab 3 (docs/labs/lab3-hostname.md): the hostname through /dev/mem.
# Run in the lab VM from the repository root: sh labs/solutions/lab3.sh ; pyphys lab check 3
# Afterwards `pyphys undo` puts the old name back.
set -eu
command -v pyphys >/dev/null 2>&1 || pyphys() { python3 -m pyphys "$@"; }
NEW=${1:-NinjaNinja}

OLD=$(uname -n)
# step 1: where is the nodename? The module's __pa_symbol, and the independent sources
NODE=$(cat /sys/kernel/pyphys/nodename_phys)
pyphys ksym nodename
# step 2: which region of physical memory is that?
REGION=$(pyphys iomem "$NODE" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['results'][0]['chain'][-1]['name'])")
pyphys devmem "$NODE" --range 16
# step 3: patch it
pyphys hostname "$NEW"
[ "$(uname -n)" = "$NEW" ]
pyphys journal

cat > /tmp/lab3.txt <<RESULTS
nodename_phys = $NODE
nodename_region = $REGION
old_hostname = $OLD
new_hostname = $(uname -n)
RESULTS
cat /tmp/lab3.txt
