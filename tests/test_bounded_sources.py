"""Every data source is bounded: a file that never ends, or is not a file, is refused without being read whole."""

import os
import resource
import subprocess
import sys

import pytest

from fmnist.data import idx, sources


def test_a_fifo_under_a_files_name_is_refused_before_it_is_opened(tmp_path):
    os.mkfifo(tmp_path / idx.TRAIN_IMAGES.gz_name)  # opening it for reading would wait for a writer forever
    fetched = sources.directory(tmp_path, "test dir")
    error = fetch_error(fetched, idx.TRAIN_IMAGES)
    assert error == f"{tmp_path / idx.TRAIN_IMAGES.gz_name}: not a regular file (a device, FIFO or socket)"


def test_a_device_linked_under_a_files_name_is_refused(tmp_path):
    (tmp_path / idx.TRAIN_LABELS.name).symlink_to("/dev/zero")
    assert "not a regular file" in fetch_error(sources.directory(tmp_path, "test dir"), idx.TRAIN_LABELS)


def test_the_next_source_is_tried_after_a_refused_one(tmp_path):
    os.mkfifo(tmp_path / idx.TRAIN_IMAGES.gz_name)
    good = sources.Source("good", lambda file: b"ignored")
    bad = sources.directory(tmp_path, "$FASHION_MNIST_DIR", explicit=True)
    with pytest.raises(sources.DataError) as error:
        sources.fetch_all([bad, good])
    assert "not a regular file" in str(error.value) and "good: " in str(error.value)  # both tried, in order


def test_a_huge_plain_file_is_read_only_to_its_expected_size_in_bounded_memory(tmp_path):
    huge = tmp_path / idx.TRAIN_LABELS.name
    with open(huge, "wb") as f:
        f.truncate(3 << 30)  # 3 GiB, sparse: no disk used
    # In a child process capped at 1 GiB of address space beyond what Python and torch take.
    script = f"""
import resource, sys
sys.path.insert(0, {str(os.getcwd())!r})
from pathlib import Path
from fmnist.data import idx, sources
try:
    sources.verified(idx.TRAIN_LABELS, sources.directory(Path({str(tmp_path)!r}), "d").fetch(idx.TRAIN_LABELS), "f")
except sources.DataError as error:
    print(error)
"""
    limit = 4 << 30  # torch's import alone maps a few GiB of address space; reading 3 GiB more would not fit
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)),
    )
    assert result.stdout.strip() == "f: checksum mismatch (altered or truncated)", result.stderr


def fetch_error(source: sources.Source, file: idx.IdxFile) -> str:
    try:
        source.fetch(file)
    except sources.DataError as error:
        return str(error)
    raise AssertionError("fetched")
