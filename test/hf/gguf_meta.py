"""Reads a GGUF file's key/value pairs and tensor directory (names, ggml types, shapes).

gguf-py's GGUFReader builds a numpy view per array element, which takes about a minute for the 262,144-token
vocabulary; this reader only walks the header (a second or two) and never touches tensor data.
"""
from __future__ import annotations

import struct
from typing import Any, BinaryIO

# GGUF value types
_U8, _I8, _U16, _I16, _U32, _I32, _F32, _BOOL, _STR, _ARR, _U64, _I64, _F64 = range(13)
_SCALAR = {_U8: "<B", _I8: "<b", _U16: "<H", _I16: "<h", _U32: "<I", _I32: "<i", _F32: "<f",
           _BOOL: "<?", _U64: "<Q", _I64: "<q", _F64: "<d"}

# ggml type ids -> names (ggml.h enum ggml_type), the ones a Gemma-4 file may hold
GGML_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
              10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 30: "BF16"}


class _Buf:
    def __init__(self, data: bytes):
        self.d = data
        self.p = 0

    def take(self, fmt: str):
        v = struct.unpack_from(fmt, self.d, self.p)[0]
        self.p += struct.calcsize(fmt)
        return v

    def string(self) -> bytes:
        n = self.take("<Q")
        s = self.d[self.p:self.p + n]
        self.p += n
        return s


def _value(b: _Buf, t: int, raw_strings: bool) -> Any:
    if t == _STR:
        s = b.string()
        return s if raw_strings else s.decode("utf-8", errors="surrogateescape")
    if t == _ARR:
        et = b.take("<I")
        n = b.take("<Q")
        if et in _SCALAR:
            fmt = _SCALAR[et]
            size = struct.calcsize(fmt)
            vals = list(struct.unpack_from("<" + fmt[1] * n, b.d, b.p))
            b.p += size * n
            return vals
        return [_value(b, et, raw_strings) for _ in range(n)]
    return b.take(_SCALAR[t])


def read_gguf_meta(path: str, raw_strings: bool = False) -> dict[str, Any]:
    """{'version', 'kv': {key: value}, 'tensors': [{'name', 'type', 'ne'}]}, in file order."""
    with open(path, "rb") as f:
        head = _read_header_bytes(f)
    b = _Buf(head)
    if b.d[:4] != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    b.p = 4
    version = b.take("<I")
    n_tensors = b.take("<Q")
    n_kv = b.take("<Q")
    kv: dict[str, Any] = {}
    for _ in range(n_kv):
        key = b.string().decode("utf-8")
        t = b.take("<I")
        kv[key] = _value(b, t, raw_strings)
    tensors = []
    for _ in range(n_tensors):
        name = b.string().decode("utf-8")
        nd = b.take("<I")
        ne = [b.take("<Q") for _ in range(nd)]
        gt = b.take("<I")
        b.take("<Q")  # offset
        tensors.append({"name": name, "type": GGML_TYPES.get(gt, str(gt)), "ne": ne})
    return {"version": version, "kv": kv, "tensors": tensors}


def _read_header_bytes(f: BinaryIO) -> bytes:
    # The header of a 262k-token vocabulary is ~10 MB; read in chunks until the parser no longer runs out.
    data = b""
    chunk = 16 << 20
    while True:
        more = f.read(chunk)
        data += more
        try:
            b = _Buf(data)
            b.p = 4
            b.take("<I")
            n_t = b.take("<Q")
            n_kv = b.take("<Q")
            for _ in range(n_kv):
                b.string()
                _value(b, b.take("<I"), True)
            for _ in range(n_t):
                b.string()
                nd = b.take("<I")
                b.p += 8 * nd + 4 + 8
            if b.p > len(data):
                raise struct.error("short")
            return data
        except struct.error:
            if not more:
                raise
