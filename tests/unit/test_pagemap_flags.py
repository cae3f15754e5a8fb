"""Flag words: every pagemap bit decoded per pagemap.rst, kpageflags names and expansions as the
kernel's own page-types prints them (outputs captured from the page-types of 6.1 and of 6.12 on
crafted kpageflags files: tests/fixtures/pagemap/page-types-RELEASE-*.txt, see make_fixtures.py)."""

from __future__ import annotations

import os
import struct

import pytest

from pyphys import pagemap
from pyphys.errors import UsageError

FIX = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "pagemap")


def bit(n: int) -> int:
    return 1 << n


# ---- pagemap entries: bit numbers straight from Documentation/admin-guide/mm/pagemap.rst ----
def test_present_page_every_flag():
    raw = bit(63) | bit(61) | bit(57) | bit(56) | bit(55) | 0x12345
    e = pagemap.decode_entry(raw, pfn_visible=True)
    assert (e.present, e.swapped, e.file_or_shared_anon, e.uffd_wp, e.exclusive, e.soft_dirty) == (
        True,
        False,
        True,
        True,
        True,
        True,
    )
    assert e.pfn == 0x12345 and not e.pfn_hidden
    assert e.swap_type is None and e.swap_offset is None
    assert not e.guard_region and e.unknown_bits == 0
    assert e.kind == "present"


@pytest.mark.parametrize(
    "b,attr",
    [
        (55, "soft_dirty"),
        (56, "exclusive"),
        (57, "uffd_wp"),
        (58, "guard_region"),
        (61, "file_or_shared_anon"),
        (62, "swapped"),
        (63, "present"),
    ],
)
def test_each_bit_alone(b, attr):
    e = pagemap.decode_entry(bit(b) | 0x20 | 3)
    others = {"soft_dirty", "exclusive", "uffd_wp", "guard_region", "file_or_shared_anon", "swapped", "present"} - {
        attr
    }
    assert getattr(e, attr) is True
    assert not any(getattr(e, o) for o in others)


def test_pfn_uses_bits_0_to_54():
    e = pagemap.decode_entry(bit(63) | (bit(55) - 1))
    assert e.pfn == bit(55) - 1
    assert not e.soft_dirty


def test_swap_type_and_offset():
    # "Bits 0-4 swap type if swapped, Bits 5-54 swap offset if swapped"
    e = pagemap.decode_entry(bit(62) | 0b00011 | (0xABCDE << 5))
    assert e.kind == "swapped"
    assert (e.swap_type, e.swap_offset, e.pfn, e.present) == (3, 0xABCDE, None, False)


def test_guard_region_is_not_called_swapped():
    # since 6.15 a guard region is a PTE marker, reported with the swap bit *and* bit 58
    e = pagemap.decode_entry(bit(62) | bit(58) | 31 | (2 << 5))
    assert e.guard_region and e.swapped and e.kind == "guard region"


def test_not_present():
    e = pagemap.decode_entry(0)
    assert e.kind == "not present" and e.pfn is None and not e.pfn_hidden


def test_soft_dirty_hole():
    e = pagemap.decode_entry(bit(55))
    assert e.kind == "not present" and e.soft_dirty


def test_documented_zero_bits_are_reported():
    e = pagemap.decode_entry(bit(63) | bit(59) | bit(60) | 7)
    assert e.unknown_bits == bit(59) | bit(60) and e.pfn == 7


def test_hidden_pfn_is_never_frame_zero():
    # "Starting from 4.2 the PFN field is zeroed if the user does not have CAP_SYS_ADMIN"
    e = pagemap.decode_entry(bit(63) | bit(56))
    assert e.pfn is None and e.pfn_hidden and e.present
    e = pagemap.decode_entry(bit(63) | 0x777, pfn_visible=False)
    assert e.pfn is None and e.pfn_hidden
    s = pagemap.decode_entry(bit(62))
    assert s.pfn_hidden and s.swap_type is None and s.swap_offset is None


def test_real_frame_zero_when_visible():
    e = pagemap.decode_entry(bit(63), pfn_visible=True)
    assert e.pfn == 0 and not e.pfn_hidden


@pytest.mark.parametrize("bad", [-1, 1 << 64])
def test_entry_must_be_64_bit(bad):
    with pytest.raises(ValueError):
        pagemap.decode_entry(bad)


# ---- kpageflags: the page-types of each release is the judge ----
RELEASES = ["6.1", "6.12"]


def crafted_words(release: str) -> list[int]:
    with open(os.path.join(FIX, f"crafted-{release}.kpageflags"), "rb") as f:
        data = f.read()
    return [w for (w,) in struct.iter_unpack("<Q", data)]


def page_types_list(name: str) -> dict[int, str]:
    """``page-types -L``: 'offset<TAB>flags' per PFN (hex offset, symbolic flags)."""
    out = {}
    with open(os.path.join(FIX, name)) as f:
        next(f)
        for line in f:
            pfn, flags = line.rstrip("\n").split("\t")
            out[int(pfn, 16)] = flags
    return out


def page_types_summary(name: str) -> dict[int, tuple[int, str, str]]:
    """page-types summary rows: flags -> (pages, symbolic, long names)."""
    rows = {}
    with open(os.path.join(FIX, name)) as f:
        for line in f:
            if not line.startswith("0x"):
                continue
            parts = line.rstrip("\n").split("\t")
            flags = int(parts[0], 16)
            count_mb_sym = parts[1].split()
            rows[flags] = (int(count_mb_sym[0]), count_mb_sym[2], parts[2] if len(parts) > 2 else "")
    return rows


@pytest.mark.parametrize("release", RELEASES)
def test_symbolic_flags_match_page_types_default_view(release):
    table = pagemap.flag_table(release)
    want = page_types_list(f"page-types-{release}-L.txt")
    words = crafted_words(release)
    assert len(want) == len(words)
    for pfn, word in enumerate(words):
        got = pagemap.symbolic_flags(pagemap.well_known_flags(word), table)
        assert got == want[pfn], f"PFN {pfn:#x} word {word:#x}"


@pytest.mark.parametrize("release", RELEASES)
def test_expanded_flags_match_page_types_raw_view(release):
    table = pagemap.flag_table(release)
    want = page_types_list(f"page-types-{release}-rL.txt")
    for pfn, word in enumerate(crafted_words(release)):
        got = pagemap.symbolic_flags(pagemap.expand_flags(word, 0, table), table)
        assert got == want[pfn], f"PFN {pfn:#x} word {word:#x}"


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("raw", [False, True], ids=["default", "raw"])
def test_long_names_and_summary_match_page_types(release, raw):
    table = pagemap.flag_table(release)
    want = page_types_summary(f"page-types-{release}-{'r-' if raw else ''}summary.txt")
    got: dict[int, int] = {}
    for word in crafted_words(release):
        f = pagemap.expand_flags(word, 0, table) if raw else pagemap.well_known_flags(word)
        got[f] = got.get(f, 0) + 1
    assert {f: n for f, n in got.items()} == {f: r[0] for f, r in want.items()}
    for f, (_n, symbolic, names) in want.items():
        assert pagemap.symbolic_flags(f, table) == symbolic
        assert ",".join(pagemap.flag_names(f, table)) == names


@pytest.mark.parametrize(
    "release,letters,bit34,slob",
    [
        # tools/vm/page-types.c of 6.1: 45 named bits, c:uncached and P:slob_free among them
        ("6.1.0-57-amd64", 45, "mappedtodisk", True),
        ("6.3.13", 45, "mappedtodisk", True),
        # 6.4 removed SLOB and page-types' slob_free
        ("6.4.0", 44, "mappedtodisk", False),
        ("6.11.11-arch1", 44, "mappedtodisk", False),
        # tools/mm/page-types.c of 6.12: no c:uncached, bit 34 is d:owner_2
        ("6.12.117+deb12-amd64", 43, "owner_2", False),
        ("6.18.44-fc-v1045", 43, "owner_2", False),
    ],
)
def test_table_follows_kernel_release(release, letters, bit34, slob):
    t = pagemap.flag_table(release)
    assert len(t.letters) == letters and len(pagemap.symbolic_flags(0, t)) == letters
    assert pagemap.flag_names(bit(34), t) == (bit34,)
    # long names stay complete for every bit, named by page-types or not
    assert pagemap.flag_names(bit(39) | bit(42) | bit(49), t) == ("uncached", "arch_3", "slob_free")
    slab_private = pagemap.expand_flags(bit(7) | bit(35), 0, t)
    assert slab_private == (bit(7) | bit(49) if slob else bit(7) | bit(35))


def test_running_kernel_table_comes_from_procfs_root(tmp_path):
    from pyphys import paths

    (tmp_path / "sys" / "kernel").mkdir(parents=True)
    (tmp_path / "sys" / "kernel" / "osrelease").write_text("6.12.117+deb12-amd64\n")
    old = paths.set_roots(proc=str(tmp_path))
    try:
        assert pagemap.flag_table() is pagemap.flag_table("6.12")
        assert len(pagemap.symbolic_flags(0)) == 43
    finally:
        paths.set_roots(**old)
    assert pagemap.kernel_release_tuple("6.1.0-57-amd64") == (6, 1)
    with pytest.raises(ValueError):
        pagemap.kernel_release_tuple("linux")


def test_expansions_named():
    t = pagemap.flag_table("6.1")
    anon_excl = pagemap.expand_flags(bit(12) | bit(34), 0, t)  # anon + mappedtodisk
    assert "anon_exclusive" in pagemap.flag_names(anon_excl, t) and "mappedtodisk" not in pagemap.flag_names(
        anon_excl, t
    )
    file_page = pagemap.expand_flags(bit(34), 0, t)  # mappedtodisk on a file page stays
    assert pagemap.flag_names(file_page, t) == ("mappedtodisk",)
    thp = pagemap.flag_names(pagemap.expand_flags(bit(15) | bit(22), 0, t), t)
    assert "thp" in thp and "compound_head" in thp


def test_pagemap_bits_fold_into_flags():
    # page-types -r: soft-dirty -> bit 40, file -> 61, swap -> 62, exclusive -> 63;
    # pyphys adds uffd-wp (57) and guard region (58) at their pagemap bit numbers
    f = pagemap.expand_flags(0, bit(55) | bit(56) | bit(57) | bit(58) | bit(61) | bit(62))
    assert pagemap.flag_names(f) == ("softdirty", "uffd_wp", "guard_region", "file", "swap", "mmap_exclusive")


def test_unknown_bits_named_by_number():
    assert pagemap.flag_names(bit(30) | bit(3)) == ("uptodate", "bit30")


def test_flag_bits_round_trip_and_errors():
    assert pagemap.flag_bits("anonymous, thp") == bit(12) | bit(22)
    assert pagemap.flag_bits("bit30") == bit(30)
    assert pagemap.flag_bits("mappedtodisk") == pagemap.flag_bits("owner_2") == bit(34)
    with pytest.raises(UsageError):
        pagemap.flag_bits("anonymous,not_a_flag")


def test_entry_fields_are_the_layout_bits():
    from pyphys.layouts import pagemap as layout

    e = pagemap.decode_entry(0)
    names = [name for _bit, name, _doc in layout.PAGEMAP_BITS]
    assert [f for f in names if hasattr(e, f)] == names
    for b, name, _doc in layout.PAGEMAP_BITS:
        assert getattr(pagemap.decode_entry(bit(b) | 0x21), name) is True
