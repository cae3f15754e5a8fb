#!/usr/bin/env bash
# Build (or reuse) kmod/pyphys.ko against the kernel tree or headers package KDIR.
#
#   scripts/build-module.sh KDIR     e.g. /lib/modules/6.1.0-56-amd64/build
#
# The build happens OUT of the repo: the kmod sources are copied into
# $cache/kmod-<key>, where key = first 16 hex of sha256 over the sources, the kernel
# release of KDIR (UTS_RELEASE: what vermagic checks), KDIR's real path, .config and
# Module.symvers (the symbol CRCs modpost records). Same inputs: the finished build is
# reused. Prints the absolute path of pyphys.ko on stdout, progress on stderr. Any
# compiler or modpost warning fails the build: the module must build clean everywhere.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/common.sh"
cache=$(pyphys_cache_dir)
src=$top/kmod
sources=(pyphys.c compat.h Kbuild Makefile)

log() { printf '[build-module] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ $# -eq 1 ] || die "usage: $0 KDIR (a configured kernel tree or /lib/modules/<release>/build)"
[ -d "$1" ] || die "KDIR $1 is not a directory (install linux-headers-<release>, or run scripts/build-kernel.sh)"
kdir=$(cd "$1" && pwd -P)

# A tree that is not prepared for external modules builds nothing useful: say so now.
[ -f "$kdir/.config" ] || die "$kdir has no .config: not a configured kernel tree or headers package"
uts=$kdir/include/generated/utsrelease.h
[ -f "$uts" ] || die "$kdir lacks include/generated/utsrelease.h: run 'make modules_prepare' in it"
release=$(sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' "$uts")
[ -n "$release" ] || die "cannot read UTS_RELEASE from $uts"
# Without Module.symvers modpost warns that every kernel symbol is undefined.
[ -f "$kdir/Module.symvers" ] || die "$kdir has no Module.symvers: build the kernel's modules first (scripts/build-kernel.sh does)"

key=$( {
    for f in "${sources[@]}"; do printf '%s\n' "$f"; cat "$src/$f"; done
    printf 'release=%s\nkdir=%s\n' "$release" "$kdir"
    cat "$kdir/.config" "$kdir/Module.symvers"
} | sha256sum | cut -c1-16)
out=$cache/kmod-$key
ko=$out/pyphys.ko

mkdir -p "$cache"
# Two callers (parallel tests) must not build in the same directory at once.
exec 9>"$out.lock"
flock 9

if [ -f "$out/.complete" ] && [ -f "$ko" ]; then
    log "reusing $ko (kernel $release)"
    echo "$ko"
    exit 0
fi

rm -rf "$out"
mkdir -p "$out"
for f in "${sources[@]}"; do cp "$src/$f" "$out/"; done

log "building pyphys.ko for $release against $kdir"
start=$(date +%s%N)
if ! make -C "$kdir" M="$out" modules >"$out/build.log" 2>&1; then
    cat "$out/build.log" >&2
    die "make -C $kdir M=$out modules failed (log above, kept in $out/build.log)"
fi
# gcc says "warning:", modpost says "WARNING:".
if grep -qi 'warning:' "$out/build.log"; then
    cat "$out/build.log" >&2
    die "pyphys.ko built with warnings (above): fix them, the module must build clean"
fi
[ -f "$ko" ] || { cat "$out/build.log" >&2; die "make succeeded but produced no $ko"; }

touch "$out/.complete"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
log "built in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s: $ko"
echo "$ko"
