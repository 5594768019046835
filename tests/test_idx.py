import gzip

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fmnist.core.errors import DataError
from fmnist.data import idx
from tests.synthetic import idx_bytes


def test_parse_reads_shape_and_pixels():
    array = torch.arange(2 * 3 * 4, dtype=torch.uint8).reshape(2, 3, 4)
    assert torch.equal(idx.parse(idx_bytes(array), "x"), array)


def test_parse_labels_file():
    labels = torch.tensor([3, 1, 4, 1, 5], dtype=torch.uint8)
    assert torch.equal(idx.parse(idx_bytes(labels), "x"), labels)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00\x00\x0d\x01" + (1).to_bytes(4, "big") + b"\x00" * 4, "bad magic number"),
        (b"\x01\x00\x08\x01" + (1).to_bytes(4, "big") + b"\x00", "bad magic number"),
        (b"\x00\x00\x08\x00", "bad magic number"),
        (b"\x00\x00", "too short"),
        (b"\x00\x00\x08\x03" + (5).to_bytes(4, "big"), "truncated header"),
        (b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + b"\x00" * 9, "truncated"),
        (b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + b"\x00" * 11, "trailing bytes"),
    ],
)
def test_parse_refuses_malformed_files(data, message):
    with pytest.raises(DataError, match=message) as error:
        idx.parse(data, "some/file")
    assert "some/file" in str(error.value)


def test_read_checks_expected_shape(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(torch.zeros(7, dtype=torch.uint8)))
    with pytest.raises(DataError, match=r"shape \(7,\), expected \(60000,\)"):
        idx.read(path, idx.TRAIN_LABELS)


@pytest.mark.parametrize(
    "file, shape, found, wanted",
    [
        (idx.TRAIN_IMAGES, (5, 28, 27), "5 x 28 x 27", "N x 28 x 28"),
        (idx.TEST_IMAGES, (5, 784), "5 x 784", "N x 28 x 28"),
        (idx.TRAIN_LABELS, (5, 28, 28), "5 x 28 x 28", "N"),
    ],
)
def test_read_refuses_other_dimensions_than_the_official_file_of_that_name(tmp_path, file, shape, found, wanted):
    path = tmp_path / file.gz_name
    path.write_bytes(gzip.compress(idx_bytes(torch.zeros(shape, dtype=torch.uint8))))
    with pytest.raises(DataError) as error:
        idx.read(path)
    assert str(error.value).startswith(f"{path}: dimensions {found}, expected {wanted} ")


def test_read_accepts_any_count_of_the_official_dimensions(tmp_path):
    path = tmp_path / idx.TRAIN_IMAGES.name
    path.write_bytes(idx_bytes(torch.zeros(3, 28, 28, dtype=torch.uint8)))
    assert idx.read(path).shape == (3, 28, 28)


def test_gunzip_limit_passes_a_file_of_exactly_that_size():
    content = idx_bytes(torch.ones(7, dtype=torch.uint8))
    assert idx.gunzip(gzip.compress(content), "x", limit=len(content)) == content


def test_read_accepts_gzip_and_refuses_corrupt_gzip(tmp_path):
    content = idx_bytes(torch.ones(4, dtype=torch.uint8))
    good, bad = tmp_path / "good.gz", tmp_path / "bad.gz"
    good.write_bytes(gzip.compress(content))
    bad.write_bytes(gzip.compress(content)[:-6])
    assert idx.read(good).tolist() == [1, 1, 1, 1]
    with pytest.raises(DataError, match="corrupt gzip"):
        idx.read(bad)


def test_read_names_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="nowhere.*cannot read"):
        idx.read(tmp_path / "nowhere")


@settings(max_examples=400, deadline=None)
@given(
    st.binary(max_size=64)
    | st.builds(
        lambda dims, body: b"\x00\x00\x08" + bytes([len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + body,
        st.lists(st.integers(0, 6), min_size=1, max_size=3),
        st.binary(max_size=300),
    )
)
def test_any_bytes_parse_or_raise_data_error(data):
    """Fuzz: arbitrary bytes, and near-valid headers with random bodies, never crash the reader."""
    try:
        array = idx.parse(data, "fuzz")
    except DataError:
        return
    assert array.dtype == torch.uint8
    assert array.numel() == len(data) - 4 - 4 * data[3]
