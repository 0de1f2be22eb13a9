"""The R lazy-load reader, against files written here by a small independent R XDR writer."""

import gzip
import struct
import zlib

import pytest

from secateur.data.rdata import read_lazyload_db, unserialize
from secateur.errors import SecateurError

NIL = struct.pack(">i", 254)


def i32(v):
    return struct.pack(">i", v)


def header():
    return b"X\n" + i32(3) + i32(0x40201) + i32(0x30500) + i32(5) + b"UTF-8"


def charsxp(text):
    data = text.encode()
    return i32(9 | (1 << 15)) + i32(len(data)) + data  # UTF-8 flag in the gp bits


def symbol(name, refs):
    if name in refs:
        return i32(255 | ((refs.index(name) + 1) << 8))
    refs.append(name)
    return i32(1) + charsxp(name)


def names_attr(names, refs):
    return i32(2 | (1 << 10)) + symbol("names", refs) + strsxp(names) + NIL


def strsxp(values, names=None, refs=None):
    flags = 16 | ((1 << 9) if names else 0)
    body = (
        i32(flags)
        + i32(len(values))
        + b"".join(i32(9) + i32(-1) if v is None else charsxp(v) for v in values)
    )
    return body + (names_attr(names, refs) if names else b"")


def intsxp(values):
    return i32(13) + i32(len(values)) + b"".join(i32(v) for v in values)


def vecsxp(items, names, refs):
    return i32(19 | (1 << 9)) + i32(len(items)) + b"".join(items) + names_attr(names, refs)


def test_unserialize_character_vector_with_na_and_names():
    refs = []
    blob = header() + strsxp(["a", None, "ü"], names=["x", "y", "z"], refs=refs)
    assert unserialize(blob) == ["a", None, "ü"]


def test_lazyload_db_round_trip(tmp_path):
    objects = {"book": ["Chapter 1", "", "It is a truth."], "other": ["one line"]}
    db, entries = b"", []
    for _name, lines in objects.items():
        payload = header() + strsxp(lines)
        record = struct.pack(">I", len(payload)) + zlib.compress(payload)
        entries.append((len(db), len(record)))
        db += record
    refs = []
    variables = vecsxp([intsxp(list(e)) for e in entries], list(objects), refs)
    index = header() + vecsxp(
        [variables, vecsxp([], [], refs), i32(10) + i32(1) + i32(1)],
        ["variables", "references", "compressed"],
        refs,
    )
    (tmp_path / "Rdata.rdb").write_bytes(db)
    (tmp_path / "Rdata.rdx").write_bytes(gzip.compress(index))
    assert read_lazyload_db(tmp_path) == objects
    assert refs == ["names"]  # the writer really used a back-reference for the repeated symbol


def test_missing_database_is_a_clear_error(tmp_path):
    with pytest.raises(SecateurError, match="no R lazy-load database"):
        read_lazyload_db(tmp_path)
