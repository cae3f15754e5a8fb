#!/usr/bin/env bash
# Build (or reuse) the pyphys lab kernel: Debian's linux-source-<version> (6.12 by default,
# PYPHYS_LAB_VERSION=6.1 for the previous one), `make tinyconfig`, then kernel/lab.config and
# kernel/lab-<version>.config merged on top. The result is cached outside the repo, keyed by
# everything that goes into it: the fragments, this script and the source package version.
# A config change rebuilds; nothing else does.
#
#   scripts/build-kernel.sh [VERSION]
#
# Prints the cache directory on stdout (bzImage, the tree for out-of-tree modules, vmlinux
# with DWARF for drgn, and the tree's own page-types).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/common.sh"
cache=$(pyphys_cache_dir)
version=${1:-${PYPHYS_LAB_VERSION:-6.12}}
fragments=("$top/kernel/lab.config" "$top/kernel/lab-$version.config")
srcpkg=linux-source-$version
tarball=/usr/src/$srcpkg.tar.xz

log() { printf '[build-kernel] %s\n' "$*" >&2; }

[ -r "${fragments[1]}" ] || { log "no kernel/lab-$version.config: lab kernels exist for $(cd "$top/kernel" && ls lab-*.config | sed 's/lab-\(.*\)\.config/\1/' | xargs)"; exit 1; }
[ -r "$tarball" ] || { log "missing $tarball: install the Debian package $srcpkg (apt-get install $srcpkg, or run scripts/setup.sh)"; exit 1; }
srcver=$(dpkg-query -W -f='${Version}' "$srcpkg" 2>/dev/null || echo unknown)
key=$( { cat "${fragments[@]}" "$0" "$top/scripts/common.sh"; echo "$srcver"; } | sha256sum | cut -c1-16)
out=$cache/lab-$version-$key

if [ -f "$out/.complete" ]; then
    log "reusing cached lab kernel $out"
    echo "$out"
    exit 0
fi

mkdir -p "$cache"
# Two callers at once (make demo and make test in two terminals) must not build the same tree.
exec 9>"$out.lock"
flock 9
if [ -f "$out/.complete" ]; then
    log "reusing cached lab kernel $out (built while waiting)"
    echo "$out"
    exit 0
fi
# Build in place (kbuild trees do not like being moved); .complete marks a finished build.
rm -rf "$out"
mkdir -p "$out"
start=$(date +%s)
log "extracting $tarball ($srcpkg $srcver)"
tar -xf "$tarball" -C "$out"
mv "$out/$srcpkg" "$out/linux"
tree=$out/linux

log "configuring: tinyconfig + kernel/lab.config + kernel/lab-$version.config"
make -s -C "$tree" tinyconfig >/dev/null
(cd "$tree" && scripts/kconfig/merge_config.sh -m .config "${fragments[@]}" >/dev/null)
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
done < <(cat "${fragments[@]}")
[ "$missing" = 0 ] || { log "the kernel fragments ask for options the final .config lacks"; exit 1; }

log "compiling bzImage and modules with $(nproc) jobs (about 10 minutes on 2 cores)"
make -C "$tree" -j"$(nproc)" bzImage modules 2>&1 | awk '/^  (CC|LD|AR|AS)/ { n++; if (n % 200 == 0) printf "[build-kernel] %d objects\n", n > "/dev/stderr"; next } { print > "/dev/stderr" }'
[ -f "$tree/arch/x86/boot/bzImage" ] || { log "no bzImage produced"; exit 1; }

# The kernel's own pagemap reader: tools/vm in 6.1, tools/mm in 6.12 (the directory was renamed).
tools=$tree/tools/mm
[ -d "$tools" ] || tools=$tree/tools/vm
log "building ${tools#"$tree/"}/page-types (the kernel's own pagemap reader)"
make -s -C "$tools" page-types >/dev/null 2>&1 || { log "page-types failed to build"; exit 1; }
ln -sf "${tools#"$tree/"}/page-types" "$tree/page-types"

# Object files are not needed once the image, vmlinux and Module.symvers exist: with DWARF
# they are most of the tree's size.
find "$tree" -name '*.o' ! -path '*/scripts/*' ! -path '*/tools/*' -delete

echo "$srcver" > "$out/source-version"
echo "$(( $(date +%s) - start ))" > "$out/build-seconds"
touch "$out/.complete"
log "lab kernel $version ready in $(( $(date +%s) - start )) s: $out ($(du -sh "$out" | cut -f1))"
echo "$out"
