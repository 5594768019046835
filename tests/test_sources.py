import gzip
import tracemalloc

import pytest

from fmnist.core.errors import DataError
from fmnist.data import idx, sources
from tests.synthetic import write_raw


@pytest.fixture
def synthetic_files(tmp_path, monkeypatch):
    """Synthetic files on disk, with the known checksums swapped for theirs."""
    contents = write_raw(tmp_path / "src", gz=True)
    files = tuple(idx.IdxFile(f.name, idx.sha256(contents[f.name]), f.shape) for f in idx.FILES)
    monkeypatch.setattr(idx, "FILES", files)
    return tmp_path / "src", contents


def test_checksum_is_of_content_so_any_gzip_compression_passes(synthetic_files):
    _, contents = synthetic_files
    file = idx.FILES[0]
    content = contents[file.name]
    zalando_style = gzip.compress(content, compresslevel=9, mtime=0)
    debian_style = gzip.compress(content, compresslevel=1, mtime=123)  # ...and a gzip of other settings
    assert zalando_style != debian_style
    assert sources.verified(file, zalando_style, "a") == content
    assert sources.verified(file, debian_style, "b") == content
    assert sources.verified(file, content, "plain") == content


@pytest.mark.parametrize("damage", [lambda b: b[:-100], lambda b: b[:50] + bytes([b[50] ^ 1]) + b[51:]])
def test_altered_or_truncated_content_fails_checksum(synthetic_files, damage):
    _, contents = synthetic_files
    file = idx.FILES[0]
    with pytest.raises(DataError, match="checksum mismatch"):
        sources.verified(file, damage(contents[file.name]), "here")


def test_fetch_all_takes_the_first_complete_source(synthetic_files, tmp_path):
    src, contents = synthetic_files
    empty = tmp_path / "empty"
    empty.mkdir()
    got = sources.fetch_all([sources.directory(empty, "first"), sources.directory(src, "second")])
    assert got.files == contents and got.source == f"second {src}"
    assert got.skipped == []  # "first" was not named by the user: falling back from it is normal


def copy_of(src, tmp_path):
    """A directory the user named, holding the same files as `src`, for a test to damage."""
    named = tmp_path / "named"
    named.mkdir()
    for path in src.iterdir():
        (named / path.name).write_bytes(path.read_bytes())
    return named


def test_a_damaged_explicit_source_is_reported_with_file_and_reason(synthetic_files, tmp_path):
    src, contents = synthetic_files
    named = copy_of(src, tmp_path)
    gz = named / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:-100])
    got = sources.fetch_all(
        [sources.directory(named, "$FASHION_MNIST_DIR", explicit=True), sources.directory(src, "Debian package")]
    )
    assert got.files == contents and got.source == f"Debian package {src}"
    [reason] = got.skipped
    assert reason.startswith(f"$FASHION_MNIST_DIR {named}: train-images-idx3-ubyte: corrupt gzip data")


def test_a_gzip_bomb_is_named_and_skipped_without_unpacking_it(synthetic_files, tmp_path):
    src, contents = synthetic_files
    named = copy_of(src, tmp_path)
    bomb = gzip.compress(bytes(1 << 20), mtime=0) * 200  # 200 MB of zeros in 200 KB: gzip members concatenate
    (named / "train-labels-idx1-ubyte.gz").write_bytes(bomb)
    got = sources.fetch_all(
        [sources.directory(named, "$FASHION_MNIST_DIR", explicit=True), sources.directory(src, "Debian package")]
    )
    assert got.files == contents
    assert got.skipped == [
        f"$FASHION_MNIST_DIR {named}: train-labels-idx1-ubyte: "
        f"unpacks to more than the {idx.TRAIN_LABELS.size} bytes expected"
    ]
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="unpacks to more than"):
            sources.verified(idx.FILES[1], bomb, "bomb")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # a few times the labels file's 60 KB; unpacked whole, the bomb took 200 MB


def test_no_source_gives_one_error_naming_every_place_and_fix(tmp_path):
    unreachable = sources.Source("mirror http://127.0.0.1:9/", lambda f: (_ for _ in ()).throw(DataError("refused")))
    with pytest.raises(DataError) as error:
        sources.fetch_all([sources.directory(tmp_path, "$FASHION_MNIST_DIR"), unreachable])
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path) in message and "127.0.0.1:9" in message
    assert sources.ENV_VAR in message and "dataset-fashion-mnist" in message and "internet" in message


def test_mirror_reports_connection_failure():
    source = sources.mirror("http://127.0.0.1:9/", timeout=2)
    with pytest.raises(DataError, match="127.0.0.1:9/train-images-idx3-ubyte.gz"):
        source.fetch(idx.TRAIN_IMAGES)


@pytest.mark.skipif(not sources.DEBIAN_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_package_files_pass_the_official_checksums():
    """Debian recompressed Zalando's files; the decompressed bytes must still be the originals."""
    files = sources.fetch_all([sources.directory(sources.DEBIAN_DIR, "Debian")]).files
    assert {name: len(content) for name, content in files.items()} == {
        "train-images-idx3-ubyte": 47040016,
        "train-labels-idx1-ubyte": 60008,
        "t10k-images-idx3-ubyte": 7840016,
        "t10k-labels-idx1-ubyte": 10008,
    }
