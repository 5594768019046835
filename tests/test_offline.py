"""The first run offline: with no mirror reachable and Debian's package absent, make gets it with apt-get."""

import os
import stat

import pytest

from fmnist.data import sources
from tools import offline


@pytest.fixture
def offline_machine(tmp_path, monkeypatch):
    """No data, no $FASHION_MNIST_DIR, no Debian package, no mirror; an apt-get that logs its arguments."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(sources.ENV_VAR, raising=False)
    monkeypatch.setattr(sources, "DEBIAN_DIR", tmp_path / "absent")
    monkeypatch.setattr(offline, "reachable", lambda url: False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    apt = bin_dir / "apt-get"
    apt.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "apt.log"}\n')
    apt.chmod(apt.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "apt.log"


def test_as_root_it_installs_debians_package_and_says_so_in_one_line(offline_machine, monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert offline.main() == 0
    assert capsys.readouterr().out.splitlines() == [
        "download: no mirror reachable; installing Debian's copy of Fashion-MNIST "
        "(apt-get install dataset-fashion-mnist)"
    ]
    assert offline_machine.read_text().split() == ["install", "-y", "-qq", "dataset-fashion-mnist"]


def test_as_another_user_it_names_the_sudo_command(offline_machine, monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert offline.main() == 0
    assert "sudo apt-get install dataset-fashion-mnist" in capsys.readouterr().out
    assert not offline_machine.exists()


def test_nothing_happens_where_a_mirror_answers(offline_machine, monkeypatch, capsys):
    monkeypatch.setattr(offline, "reachable", lambda url: True)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert offline.main() == 0
    assert capsys.readouterr().out == "" and not offline_machine.exists()


def test_a_failing_apt_get_is_one_line_with_its_reason_and_the_command(offline_machine, monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    offline_machine.parent.joinpath("bin", "apt-get").write_text(
        "#!/bin/sh\necho 'E: Unable to locate package dataset-fashion-mnist' >&2\nexit 100\n"
    )
    assert offline.main() == 100
    said = capsys.readouterr().out.splitlines()
    assert said[-1] == (
        "error: apt-get install dataset-fashion-mnist failed: E: Unable to locate package dataset-fashion-mnist; "
        "run it by hand: apt-get update && apt-get install dataset-fashion-mnist"
    )
