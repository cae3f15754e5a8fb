#!/usr/bin/env bash
# Build (or reuse) the kernel's own pagemap reader, page-types, from Debian's
# linux-source-<version>: the ground truth the pagemap tests compare with, taken from the
# same source as the kernel under test (tools/vm in 6.1, tools/mm in 6.12).
#
#   scripts/build-page-types.sh VERSION      e.g. 6.1 or 6.12
#
# Only the directories page-types needs are extracted. Cached outside the repo, keyed by the
# source package version and this script. Prints the path of the page-types binary.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/common.sh"
cache=$(pyphys_cache_dir)
version=${1:?usage: $0 VERSION (6.1 or 6.12)}
srcpkg=linux-source-$version
tarball=/usr/src/$srcpkg.tar.xz

log() { printf '[build-page-types] %s\n' "$*" >&2; }

[ -r "$tarball" ] || { log "missing $tarball: install the Debian package $srcpkg (apt-get install $srcpkg)"; exit 1; }
srcver=$(dpkg-query -W -f='${Version}' "$srcpkg" 2>/dev/null || echo unknown)
key=$( { cat "$0"; echo "$srcver"; } | sha256sum | cut -c1-16)
out=$cache/page-types-$version-$key

mkdir -p "$cache"
exec 9>"$out.lock"
flock 9
if [ -x "$out/page-types" ]; then
    echo "$out/page-types"
    exit 0
fi
rm -rf "$out"
mkdir -p "$out"
log "building page-types from $srcpkg $srcver"
tar -xf "$tarball" -C "$out" "$srcpkg/tools" "$srcpkg/include" "$srcpkg/arch/x86/include" "$srcpkg/scripts" "$srcpkg/Makefile"
tools=$out/$srcpkg/tools/mm
[ -d "$tools" ] || tools=$out/$srcpkg/tools/vm
make -s -C "$tools" page-types >"$out/build.log" 2>&1 || { cat "$out/build.log" >&2; log "page-types failed to build"; exit 1; }
cp "$tools/page-types" "$out/page-types"
rm -rf "${out:?}/$srcpkg"
echo "$out/page-types"
