"""IDX files (the MNIST family's format), parsed by their specification.

An IDX file is a header followed by raw big-endian data:

* bytes 0-1: zero;
* byte 2: the element type, ``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32,
  ``0x0D`` float32, ``0x0E`` float64;
* byte 3: the number of dimensions ``D``;
* then ``D`` big-endian uint32 sizes, then ``prod(sizes)`` elements, row-major.

Files may be gzip-compressed (recognised by their first two bytes, not by their name). Any
mismatch between the header and the payload raises :class:`IdxError` naming the file; a
partial array is never returned.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

__all__ = ["IDX_DTYPES", "IdxError", "parse_idx", "read_idx"]

# Element type code -> NumPy dtype (big-endian, as stored).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class IdxError(ValueError):
    """A file that is not a complete, well-formed IDX file."""


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parses the (uncompressed) bytes of an IDX file.

    Args:
      data: the whole file content.
      name: what to call the source in error messages (usually its path).

    Returns:
      An array of shape ``sizes`` from the header, in native byte order, read-only
      (a view of ``data`` when the element type is one byte wide).

    Raises:
      IdxError: bad magic, unknown element type, or a payload shorter or longer than the
        header promises.
    """
    if len(data) < 4:
        raise IdxError(f"{name}: too short for an IDX header ({len(data)} bytes, need 4)")
    zero, code, ndim = struct.unpack_from(">HBB", data)
    if zero != 0:
        raise IdxError(
            f"{name}: not an IDX file (first two bytes are {data[:2].hex()}, expected 0000)"
        )
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise IdxError(f"{name}: unknown IDX element type 0x{code:02X} (known: {known})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(
            f"{name}: truncated header ({len(data)} bytes; {ndim} dimensions need {header})"
        )
    shape = struct.unpack_from(f">{ndim}I", data, 4)
    dtype = IDX_DTYPES[code]
    expected = header + dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise IdxError(
            f"{name}: {what}: header says shape {shape} of {dtype.name} "
            f"({expected} bytes in all), file has {len(data)} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
        array.flags.writeable = False
    return array


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file, gzip-compressed or not.

    Args:
      path: the file.

    Returns:
      The array the file describes (see :func:`parse_idx`).

    Raises:
      IdxError: a corrupt gzip stream or a malformed IDX payload, with the path in the message.
      OSError: the file cannot be opened.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise IdxError(f"{path}: corrupt or truncated gzip stream ({e})") from e
    return parse_idx(data, path)
