import errno

import pytest
import torch

from fmnist.core import files
from fmnist.core.errors import OutputError


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    files.write_json(path, {"a": 1})
    with pytest.raises(RuntimeError):
        with files.atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert path.read_text() == '{\n  "a": 1\n}\n'
    assert list(tmp_path.iterdir()) == [path]


def test_failed_directory_write_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_dir(tmp_path / "splits") as staging:
            (staging / "train.pt").write_bytes(b"partial")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_torch_saves_are_byte_identical(tmp_path):
    state = {"w": torch.arange(5.0)}
    files.save_torch(tmp_path / "a.pt", state)
    files.save_torch(tmp_path / "b.pt", state)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["w"], state["w"])


def test_a_full_disk_is_one_line_naming_the_output_and_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "out.json"
    files.write_json(path, {"a": 1})

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "replace", full)
    with pytest.raises(OutputError, match=r"out.json: cannot write \(No space left on device\); nothing half-written"):
        files.write_json(path, {"a": 2})
    with pytest.raises(OutputError, match="splits: cannot write"):
        with files.atomic_dir(tmp_path / "splits") as staging:
            (staging / "train.pt").write_bytes(b"whole")
    assert path.read_text() == '{\n  "a": 1\n}\n' and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_a_read_only_directory_is_one_line(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    with pytest.raises(OutputError, match=r"models/m.pt: cannot write \(Read-only file system\)"):
        files.write_bytes(tmp_path / "models" / "m.pt", b"weights")
