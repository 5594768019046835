"""The IDX file format of (Fashion-)MNIST: parse, check, and describe the four official files."""

import gzip
import hashlib
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from fmnist.core.errors import DataError

UBYTE = 0x08  # IDX type code of unsigned bytes, the only type Fashion-MNIST uses


@dataclass(frozen=True)
class IdxFile:
    """One of the four official files: its name, the SHA-256 of its decompressed bytes, its shape."""

    name: str
    sha256: str
    shape: tuple[int, ...]  # the count, then each item's dimensions

    @property
    def gz_name(self) -> str:
        return self.name + ".gz"

    @property
    def size(self) -> int:
        """Bytes of the decompressed file: the header, then a byte a value."""
        return 4 + 4 * len(self.shape) + _product(self.shape)

    def holds(self, shape: tuple[int, ...]) -> bool:
        """Whether `shape` has this file's item dimensions, whatever the count."""
        return len(shape) == len(self.shape) and shape[1:] == self.shape[1:]


# Checksums of the decompressed content: Zalando's and Debian's gzip files differ, these do not.
TRAIN_IMAGES = IdxFile(
    "train-images-idx3-ubyte",
    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    (60000, 28, 28),
)
TRAIN_LABELS = IdxFile(
    "train-labels-idx1-ubyte",
    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    (60000,),
)
TEST_IMAGES = IdxFile(
    "t10k-images-idx3-ubyte",
    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    (10000, 28, 28),
)
TEST_LABELS = IdxFile(
    "t10k-labels-idx1-ubyte",
    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    (10000,),
)
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def gunzip(data: bytes, source: str, limit: int | None = None) -> bytes:
    """Decompress gzip bytes; plain (already decompressed) IDX bytes pass through.

    With a `limit`, decompression stops one byte past it: a small file that unpacks to gigabytes
    (a gzip bomb) costs no more memory than the file it pretends to be.
    """
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            content = stream.read(-1 if limit is None else limit + 1)
    except (EOFError, OSError, zlib.error) as error:
        raise DataError(f"{source}: corrupt gzip data ({error})") from None
    if limit is not None and len(content) > limit:
        raise DataError(f"{source}: unpacks to more than the {limit} bytes expected")
    return content


def parse(data: bytes, source: str) -> torch.Tensor:
    """Parse IDX bytes into a uint8 tensor, checking magic number, dimensions and length."""
    if len(data) < 4:
        raise DataError(f"{source}: {len(data)} bytes is too short for an IDX header")
    zero, dtype, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or dtype != UBYTE or not 1 <= ndim <= 3:
        raise DataError(f"{source}: bad magic number 0x{data[:4].hex()} (want 0x000008 then 1-3 dimensions)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: truncated header ({len(data)} of {header} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + _product(shape)
    if len(data) != expected:
        raise DataError(
            f"{source}: {len(data)} bytes, but dimensions {shape} need {expected}"
            + (" (truncated)" if len(data) < expected else " (trailing bytes)")
        )
    if expected == header:  # torch.frombuffer refuses an empty buffer
        return torch.empty(shape, dtype=torch.uint8)
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).reshape(shape)


def read(path: Path, expected: IdxFile | None = None) -> torch.Tensor:
    """Read an IDX file (gzip or plain) and check its shape: exactly `expected`'s when given, else,
    for a file named as an official one, that file's item dimensions (the tests' stand-ins hold fewer)."""
    try:
        data = gunzip(path.read_bytes(), str(path))
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror})") from None
    array = parse(data, str(path))
    shape = tuple(array.shape)
    if expected is not None and shape != expected.shape:
        raise DataError(f"{path}: shape {shape}, expected {expected.shape}")
    official = next((file for file in FILES if path.name in (file.name, file.gz_name)), None)
    if expected is None and official is not None and not official.holds(shape):
        raise DataError(
            f"{path}: dimensions {_dims(shape)}, expected {_dims(('N', *official.shape[1:]))}"
            " as in Fashion-MNIST's file of this name"
        )
    return array


def _dims(shape: tuple) -> str:
    return " x ".join(map(str, shape))


def _product(shape: tuple[int, ...]) -> int:
    n = 1
    for size in shape:
        n *= size
    return n
