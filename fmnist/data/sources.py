"""Where the raw Fashion-MNIST files come from: a local directory, Debian's package, or the web."""

import os
import stat
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fmnist.core.errors import DataError
from fmnist.data import idx

ENV_VAR = "FASHION_MNIST_DIR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)
FIXES = (
    f"set {ENV_VAR} to a directory holding the four IDX files (.gz or plain)",
    "install Debian's package: sudo apt-get install dataset-fashion-mnist",
    "connect to the internet so the official mirrors can be reached",
)


@dataclass(frozen=True)
class Source:
    """A place that may hold all four files; `fetch` returns one file's bytes or raises DataError."""

    label: str
    fetch: Callable[[idx.IdxFile], bytes]
    explicit: bool = False  # named by the user, so never skipped without saying why


@dataclass(frozen=True)
class Fetched:
    files: dict[str, bytes]  # file name -> verified IDX bytes
    source: str  # the label of the source that supplied them
    skipped: list[str]  # why each explicit source before it failed


# gzip adds a few bytes a block to data it cannot compress: a real .gz file is never longer than this.
GZIP_SLACK = 1 << 16


def longest(file: idx.IdxFile) -> int:
    """The most bytes any form of `file` may have, compressed or not: more is not the file."""
    return file.size + GZIP_SLACK


def read_bounded(path: Path, limit: int) -> bytes:
    """At most limit + 1 bytes of a regular file, enough to tell one that is too long; anything else
    (a device, a FIFO, a socket) is refused before it is opened, since reading it may never end."""
    if not stat.S_ISREG(path.stat().st_mode):
        raise DataError(f"{path}: not a regular file (a device, FIFO or socket)")
    with open(path, "rb") as f:
        return f.read(limit + 1)


def directory(path: Path, label: str, explicit: bool = False) -> Source:
    def fetch(file: idx.IdxFile) -> bytes:
        for name in (file.gz_name, file.name):
            if os.path.lexists(path / name):
                return read_bounded(path / name, longest(file))
        raise DataError(f"{path / file.gz_name}: no such file")

    return Source(f"{label} {path}", fetch, explicit)


def mirror(base_url: str, timeout: float = 30.0) -> Source:
    def fetch(file: idx.IdxFile) -> bytes:
        url = base_url + file.gz_name
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.read(longest(file) + 1)
        except (urllib.error.URLError, OSError) as error:
            raise DataError(f"{url}: {getattr(error, 'reason', error)}") from None

    return Source(f"mirror {base_url}", fetch)


def default_sources() -> list[Source]:
    sources = []
    if os.environ.get(ENV_VAR):
        sources.append(directory(Path(os.environ[ENV_VAR]), f"${ENV_VAR}", explicit=True))
    sources.append(directory(DEBIAN_DIR, "Debian package"))
    sources.extend(mirror(url) for url in MIRRORS)
    return sources


def verified(file: idx.IdxFile, data: bytes, origin: str) -> bytes:
    """Decompress and check against the known checksum; return the original IDX bytes."""
    content = idx.gunzip(data, origin, limit=file.size)
    if idx.sha256(content) != file.sha256:
        raise DataError(f"{origin}: checksum mismatch (altered or truncated)")
    return content


def fetch_all(sources: list[Source]) -> Fetched:
    """The four files' verified bytes from the first source that has them all intact."""
    failures, skipped = [], []
    for source in sources:
        try:
            files = {f.name: verified(f, source.fetch(f), f.name) for f in idx.FILES}
            return Fetched(files, source.label, skipped)
        except DataError as error:
            failures.append(f"{source.label}: {error}")
            if source.explicit:
                skipped.append(failures[-1])
    tried = "; ".join(failures)
    fixes = "; or ".join(FIXES)
    raise DataError(f"Fashion-MNIST not found. Tried {tried}. To fix: {fixes}")
