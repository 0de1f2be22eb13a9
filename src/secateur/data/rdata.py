"""Read character vectors out of an installed R package's lazy-load database (Rdata.rdx/.rdb).

Debian ships public-domain novels inside R data packages (janeaustenr, tokenizers). No R is
needed: the index (.rdx) is a zlib-compressed R serialisation of
list(variables = list(name = c(offset, length)), ...), and each object in the .rdb is a 4-byte
big-endian length followed by a zlib stream of one R XDR serialisation. Only the few R types these
files use are read: character vectors, lists, pairlists (attributes), integers, symbols.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

from secateur.errors import SecateurError

# R SEXP type codes used here (R Internals, "Serialization formats").
NILSXP, SYMSXP, LISTSXP, CHARSXP, LGLSXP, INTSXP, REALSXP, STRSXP, VECSXP = 0, 1, 2, 9, 10, 13, 14, 16, 19
REFSXP, NILVALUE_SXP, GLOBALENV_SXP, EMPTYENV_SXP, BASEENV_SXP = 255, 254, 253, 242, 241
_NA_INT = -(2**31)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.refs = data, 0, []

    def int(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return value

    def length(self) -> int:
        n = self.int()
        if n == -1:  # long vector: two ints
            hi, lo = self.int(), self.int()
            n = (hi << 32) + lo
        return n

    def bytes(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def header(self) -> None:
        if self.bytes(2) != b"X\n":
            raise ValueError("not an R XDR serialisation")
        version = self.int()
        self.int(), self.int()  # writer and minimal reader R versions
        if version == 3:
            self.bytes(self.int())  # native encoding name

    def item(self) -> Any:
        flags = self.int()
        kind = flags & 0xFF
        has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind in (NILVALUE_SXP, GLOBALENV_SXP, EMPTYENV_SXP, BASEENV_SXP, NILSXP):
            return None
        if kind == REFSXP:
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind == SYMSXP:
            symbol = self.item()
            self.refs.append(symbol)
            return symbol
        if kind == CHARSXP:
            n = self.int()
            return None if n == -1 else self.bytes(n).decode("utf-8", errors="replace")
        if kind == LISTSXP:
            if has_attr:
                self.item()  # a pairlist's own attributes are never needed here
            tag = self.item() if has_tag else None
            car, cdr = self.item(), self.item()
            return _Pairlist([(tag, car), *(cdr if isinstance(cdr, _Pairlist) else [])])
        if kind in (STRSXP, VECSXP):
            value = [self.item() for _ in range(self.length())]
        elif kind in (INTSXP, LGLSXP):
            n = self.length()
            value = [None if v == _NA_INT else v for v in struct.unpack_from(f">{n}i", self.data, self.pos)]
            self.pos += 4 * n
        elif kind == REALSXP:
            n = self.length()
            value = list(struct.unpack_from(f">{n}d", self.data, self.pos))
            self.pos += 8 * n
        else:
            raise ValueError(f"R type {kind} is not supported by this reader")
        if has_attr:
            attrs = self.item()
            names = dict(attrs).get("names") if isinstance(attrs, _Pairlist) else None
            if names is not None and kind == VECSXP:
                return dict(zip(names, value, strict=False))
        return value


class _Pairlist(list):
    """An R pairlist as a list of (tag, value)."""


def unserialize(data: bytes) -> Any:
    reader = _Reader(data)
    reader.header()
    return reader.item()


def read_lazyload_db(folder: Path) -> dict[str, Any]:
    """All objects of `folder`/Rdata.rdx+.rdb, by name. Character vectors come back as lists of str."""
    index_path, db_path = folder / "Rdata.rdx", folder / "Rdata.rdb"
    if not index_path.is_file() or not db_path.is_file():
        raise SecateurError(f"{folder} holds no R lazy-load database (Rdata.rdx/Rdata.rdb)")
    index = unserialize(_decompress(index_path.read_bytes()))
    db = db_path.read_bytes()
    objects = {}
    for name, (offset, length) in index["variables"].items():
        objects[name] = unserialize(_decompress(db[offset : offset + length]))
    return objects


def _decompress(blob: bytes) -> bytes:
    if blob[:2] == b"\x1f\x8b":  # the index may be gzip-wrapped
        import gzip

        return gzip.decompress(blob)
    return zlib.decompress(blob[4:])  # 4-byte uncompressed length, then a zlib stream
