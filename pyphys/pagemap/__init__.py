"""Virtual to physical: /proc/PID/pagemap, decoded with /proc/kpageflags and /proc/kpagecount.

The one package that reads those files (bit layouts in :mod:`pyphys.layouts.pagemap`), one
module per job: :mod:`~pyphys.pagemap.decode` (one entry decoded; kpageflags named as the
running kernel's page-types names them), :mod:`~pyphys.pagemap.translation` (one address, and
opening a process: who may see PFNs, where user space ends), :mod:`~pyphys.pagemap.scanner`
(ranges and whole processes), :mod:`~pyphys.pagemap.summary` (page counts by flag set). Import
the names from here: each module is loaded on first use, so a one-address lookup never loads
the scan engine.

* :func:`translate` -- one virtual address: every pagemap field, PFN, physical address,
  kpageflags names (with the ones page-types expands), kpagecount, huge page, mapping.
* :func:`scan` / :func:`runs` / :func:`summarize` -- a range or every mapping, per page, per run
  of physically contiguous pages with equal flags, or page counts by flag set (page-types'
  summary), streaming: memory stays bounded however large the process is. :func:`scan_pages`
  is :func:`scan` or :func:`runs` with the process and ranges known before the first page.

Everything returns records (:mod:`pyphys.record`: ``to_json()`` is each one's JSON form) and
never prints. Honest answers: a PFN the kernel zeroed because the reader lacks CAP_SYS_ADMIN
is *hidden*, never frame 0 (pagemap.rst: "Starting from 4.2 the PFN field is zeroed if the
user does not have CAP_SYS_ADMIN"); an unmapped address names the nearest mappings; kernel
threads, zombies and processes that exit during a scan raise clear errors; mappings that
change during a scan just read as not present.
"""

from __future__ import annotations

import sys

# public name -> the module that defines it
_WHERE = {
    "FlagTable": "decode",
    "expand_flags": "decode",
    "flag_bits": "decode",
    "flag_names": "decode",
    "flag_table": "decode",
    "kernel_release_tuple": "decode",
    "symbolic_flags": "decode",
    "well_known_flags": "decode",
    "PagemapEntry": "decode",
    "decode_entry": "decode",
    "entry_kind": "decode",
    "PAGE_SIZE": "translation",
    "UnmappedAddressError": "translation",
    "pfns_visible": "translation",
    "user_space_limit": "translation",
    "HugePage": "translation",
    "Translation": "translation",
    "translate": "translation",
    "CHUNK_PAGES": "scanner",
    "PageChunk": "scanner",
    "PageRecord": "scanner",
    "PageRun": "scanner",
    "PageScan": "scanner",
    "runs": "scanner",
    "scan": "scanner",
    "scan_chunks": "scanner",
    "scan_pages": "scanner",
    "FlagCount": "summary",
    "Summary": "summary",
    "huge_page_counts": "summary",
    "summarize": "summary",
    "summary_rows": "summary",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    __import__(f"{__name__}.{module}")  # (not importlib: the importlib package costs a start-up)
    value = getattr(sys.modules[f"{__name__}.{module}"], name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
