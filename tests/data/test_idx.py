"""IDX parsing against hand-made bytes, and the errors for truncated or corrupt files."""

import gzip
import struct

import numpy as np
import pytest

from cnn_jax.data.idx import IdxError, read_idx


def idx_bytes(code: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    """An IDX file written out from the specification, byte by byte."""
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


def write(path, content: bytes, compress: bool = False):
    path.write_bytes(gzip.compress(content) if compress else content)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_uint8_images_plain_and_gzip(tmp_path, compress):
    pixels = bytes(range(2 * 3 * 4))
    path = write(tmp_path / "x-idx3-ubyte", idx_bytes(0x08, (2, 3, 4), pixels), compress)
    array = read_idx(path)
    assert array.dtype == np.uint8 and array.shape == (2, 3, 4)
    assert array[1, 2, 3] == 23 and array[0, 1, 0] == 4  # row-major
    assert not array.flags.writeable


@pytest.mark.parametrize(
    "code, fmt, values, dtype",
    [
        (0x09, "b", [-128, -1, 127], np.int8),
        (0x0B, "h", [-2, 300, 7], np.int16),
        (0x0C, "i", [-70000, 1, 2**31 - 1], np.int32),
        (0x0D, "f", [1.5, -0.25, 3.0e7], np.float32),
        (0x0E, "d", [1e-300, -2.5, 1e300], np.float64),
    ],
)
def test_every_element_type_is_read_big_endian(tmp_path, code, fmt, values, dtype):
    path = write(tmp_path / "v", idx_bytes(code, (3,), struct.pack(f">3{fmt}", *values)))
    array = read_idx(path)
    assert array.dtype == np.dtype(dtype)  # native byte order
    np.testing.assert_array_equal(array, np.array(values, dtype))


def test_zero_examples_and_scalar_shapes(tmp_path):
    assert read_idx(write(tmp_path / "e", idx_bytes(0x08, (0, 28, 28), b""))).shape == (0, 28, 28)
    assert read_idx(write(tmp_path / "s", idx_bytes(0x08, (), b"\x07"))) == 7


GOOD = idx_bytes(0x08, (2, 2), b"\x01\x02\x03\x04")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x00\x00", "too short for an IDX header"),
        (b"\x01\x00" + GOOD[2:], "not an IDX file (first two bytes are 0100"),
        (GOOD[:2] + b"\x0a" + GOOD[3:], "unknown IDX element type 0x0A"),
        (GOOD[:9], "truncated header (9 bytes; 2 dimensions need 12)"),
        (GOOD[:-1], "truncated: header says shape (2, 2) of uint8 (16 bytes in all), file has 15"),
        (GOOD + b"\x00", "has trailing bytes"),
    ],
)
def test_malformed_files_name_the_file_and_the_fault(tmp_path, content, message):
    path = write(tmp_path / "bad-idx1-ubyte", content)
    with pytest.raises(IdxError, match="bad-idx1-ubyte") as err:
        read_idx(path)
    assert message in str(err.value)


def test_truncated_gzip_is_an_error_not_a_partial_array(tmp_path):
    data = gzip.compress(idx_bytes(0x08, (1000,), bytes(1000)))
    path = write(tmp_path / "cut.gz", data[: len(data) // 2])
    with pytest.raises(IdxError, match=r"cut\.gz: corrupt or truncated gzip stream"):
        read_idx(path)


def test_gzip_with_a_wrong_checksum_is_rejected(tmp_path):
    data = bytearray(gzip.compress(GOOD))
    data[-8] ^= 0xFF  # the CRC-32 of the uncompressed bytes sits 8 bytes from the end
    with pytest.raises(IdxError, match="crc.gz: corrupt or truncated gzip stream"):
        read_idx(write(tmp_path / "crc.gz", bytes(data)))


def test_missing_file_raises_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "absent")
