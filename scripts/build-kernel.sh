#!/usr/bin/env bash
# Build (or reuse) the pyphys lab kernel: Debian's linux-source-6.1, `make tinyconfig`,
# kernel/lab.config merged on top. The result is cached outside the repo, keyed by
# everything that goes into it: the fragment, this script and the source package version.
# A config change rebuilds; nothing else does.
#
# Prints the cache directory on stdout (bzImage, tree for out-of-tree modules, page-types).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${PYPHYS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyphys}
fragment=$top/kernel/lab.config
srcpkg=linux-source-6.1
tarball=/usr/src/$srcpkg.tar.xz

log() { printf '[build-kernel] %s\n' "$*" >&2; }

[ -r "$tarball" ] || { log "missing $tarball: run scripts/setup-host.sh (apt-get install $srcpkg)"; exit 1; }
srcver=$(dpkg-query -W -f='${Version}' "$srcpkg" 2>/dev/null || echo unknown)
key=$( { cat "$fragment" "$0"; echo "$srcver"; } | sha256sum | cut -c1-16)
out=$cache/lab-$key

if [ -f "$out/.complete" ]; then
    log "reusing cached lab kernel $out"
    echo "$out"
    exit 0
fi

mkdir -p "$cache"
# Build in place (kbuild trees do not like being moved); .complete marks a finished build.
work=$out
rm -rf "$work"
mkdir -p "$work"
start=$(date +%s)
log "extracting $tarball ($srcpkg $srcver)"
tar -xf "$tarball" -C "$work"
mv "$work/$srcpkg" "$work/linux"
tree=$work/linux

log "configuring: tinyconfig + kernel/lab.config"
make -s -C "$tree" tinyconfig >/dev/null
(cd "$tree" && scripts/kconfig/merge_config.sh -m .config "$fragment" >/dev/null)
make -s -C "$tree" olddefconfig >/dev/null

# olddefconfig silently drops options whose dependencies are off: check every one.
missing=0
while IFS= read -r line; do
    case "$line" in
    CONFIG_*=*)
        grep -qx -- "$line" "$tree/.config" || { log "DROPPED by olddefconfig: $line (got: $(grep -- "^${line%%=*}=\|^# ${line%%=*} is not set" "$tree/.config" || echo absent))"; missing=1; } ;;
    "# CONFIG_"*" is not set")
        opt=${line#\# }; opt=${opt%% *}
        if grep -q -- "^$opt=" "$tree/.config"; then log "NOT UNSET: $opt"; missing=1; fi ;;
    esac
done < "$fragment"
[ "$missing" = 0 ] || { log "kernel/lab.config asks for options the final .config lacks"; exit 1; }

log "compiling bzImage and modules with $(nproc) jobs (about 5 minutes on 2 cores)"
make -C "$tree" -j"$(nproc)" bzImage modules 2>&1 | awk '/^  (CC|LD|AR|AS)/ { n++; if (n % 200 == 0) printf "[build-kernel] %d objects\n", n > "/dev/stderr"; next } { print > "/dev/stderr" }'
[ -f "$tree/arch/x86/boot/bzImage" ] || { log "no bzImage produced"; exit 1; }

log "building tools/vm/page-types (the kernel's own pagemap reader)"
make -s -C "$tree/tools/vm" page-types >/dev/null 2>&1 || { log "page-types failed to build"; exit 1; }

echo "$srcver" > "$work/source-version"
echo "$(( $(date +%s) - start ))" > "$work/build-seconds"
touch "$work/.complete"
log "lab kernel ready in $(( $(date +%s) - start )) s: $out"
echo "$out"
