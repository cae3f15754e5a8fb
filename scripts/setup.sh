#!/usr/bin/env bash
# Install what pyphys and its lab need on a Debian-like machine, idempotently:
# Debian packages (QEMU, kernel sources and stock kernels, busybox, build tools) and a
# virtual environment in .venv with pyphys (editable), pytest, virtme-ng, volatility3 and
# matplotlib (the optional plot extra, so that the lab 1 picture is tested too), drgn and cramjam
# (the forensics extra: ELF cores and AVML dumps are tested with them); then bash and zsh
# completion and the man page, generated from the parser into .venv/share (the shell extra).
#   scripts/setup.sh          install only what is missing
#   scripts/setup.sh --ci     always `apt-get update` first (fresh CI machines)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
log() { printf '[setup] %s\n' "$*" >&2; }

packages=(
    qemu-system-x86            # the lab VM (TCG)
    linux-source-6.12          # the lab kernel's source (and page-types for the stock 6.12 kernel)
    linux-source-6.1           # page-types for the stock 6.1 kernel; the 6.1 lab (PYPHYS_LAB_VERSION=6.1)
    linux-image-amd64          # the stock kernel: Debian 12's 6.1 (STRICT_DEVMEM=y), booted as shipped
    linux-headers-amd64        # to build pyphys.ko for it
    linux-image-6.12-amd64     # the stock-6.12 kernel: Debian 12's 6.12, booted as shipped
    linux-headers-6.12-amd64   # to build pyphys.ko for it
    busybox-static             # busybox devmem / lspci: ground truth in the guest
    build-essential flex bison bc libelf-dev libssl-dev cpio kmod  # kernel + module builds
    python3-venv               # the project's virtual environment
    strace                     # the dump tests' judge that O_DIRECT is really used
    bsdextrautils pciutils     # hexdump -C and lspci: outside references in the tests
    tmux                       # drives the interactive lab shell in its test
    dkms                       # `pyphys module install` through DKMS, and the test that kmod/dkms.conf builds
    libsnappy1v5               # volatility3's AVML layer and the dump tests' own reader decompress with it
)

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${1:-}" = "--ci" ] || [ ${#missing[@]} -gt 0 ]; then
    log "apt-get update"
    $sudo apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    log "creating .venv with $($py --version)"
    $py -m venv .venv
fi
stamp=.venv/.pyphys-deps
want=$(cat pyproject.toml scripts/setup.sh bin/pyphys | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing pyphys (editable) with its test, lab, plot, forensics and shell extras into .venv"
    # editable_mode=compat: a plain path in a .pth file. The default (a meta-path finder that
    # site imports at every start-up, with pathlib, urllib, fnmatch...) cost 1.1 s of each
    # 2.3 s Python start in the TCG guest, whose root is 9p without caching.
    # (grep drops this image's pip-config notices about local index folders that are absent)
    .venv/bin/pip install -q --disable-pip-version-check --config-settings editable_mode=compat -e ".[test,lab,plot,forensics,shell]" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }
    [ "${PIPESTATUS[0]}" = 0 ] || { log "pip install failed"; exit 1; }
    echo "$want" > "$stamp"
fi
# bash and zsh completion and the man page, from this checkout's parser (shtab, argparse-manpage).
# With .venv/bin on PATH, bash-completion (2.9+) and man-db find them next to it by themselves.
share=.venv/share
mkdir -p "$share/bash-completion/completions" "$share/zsh/site-functions" "$share/man/man1"
PYTHONPATH="$top" .venv/bin/shtab --shell=bash --prog pyphys -u pyphys.cli.build_parser >"$share/bash-completion/completions/pyphys"
PYTHONPATH="$top" .venv/bin/shtab --shell=zsh --prog pyphys -u pyphys.cli.build_parser >"$share/zsh/site-functions/_pyphys"
PYTHONPATH="$top" .venv/bin/argparse-manpage --module pyphys.cli --function build_parser --prog pyphys \
    --project-name pyphys --version "$(PYTHONPATH="$top" .venv/bin/python -c 'import pyphys; print(pyphys.__version__)')" \
    --description "physical-memory experiments from user space" --manual-title "pyphys manual" \
    --include docs/pyphys.1.include --output "$share/man/man1/pyphys.1"
log "completion: $share/bash-completion/completions/pyphys (bash), $share/zsh/site-functions/_pyphys (zsh: fpath+=); man: $share/man/man1/pyphys.1"
log "ready: .venv/bin/pyphys, qemu $(qemu-system-x86_64 --version | head -1 | awk '{print $4}')"
