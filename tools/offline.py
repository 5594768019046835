"""A first run offline: Debian's copy of Fashion-MNIST, installed when nothing else can supply the files.

    python -m tools.offline        (make repro runs it before dvc repro)

Does nothing when the files are already here, $FASHION_MNIST_DIR names them, Debian's package is
installed, or an official mirror answers. Otherwise installs dataset-fashion-mnist with apt-get as
root, or says which sudo command to run. Where apt-get fails (a package list without it, a held
lock), exits non-zero with apt-get's last line and the command to run by hand. Outside fmnist/, as
no stage runs it: editing it reruns nothing.
"""

import os
import shutil
import subprocess
import urllib.request

from fmnist.core import paths
from fmnist.data import idx, sources

PACKAGE = "dataset-fashion-mnist"


def reachable(base_url: str, timeout: float = 5.0) -> bool:
    try:
        request = urllib.request.Request(base_url + idx.TRAIN_LABELS.gz_name, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout):
            return True
    except (OSError, ValueError):  # URLError is an OSError
        return False


def supplied() -> bool:
    """Whether the download stage has a source without this step (or needs none)."""
    if paths.RAW.is_dir() or os.environ.get(sources.ENV_VAR) or sources.DEBIAN_DIR.is_dir():
        return True
    return any(reachable(url) for url in sources.MIRRORS)


def install() -> int:
    apt = shutil.which("apt-get")
    if apt is None:
        print(f"download: no mirror reachable and no apt-get here; {sources.FIXES[0]}")
        return 0
    if os.geteuid() != 0:
        print(f"download: no mirror reachable; get Debian's copy of Fashion-MNIST with: sudo apt-get install {PACKAGE}")
        return 0
    print(f"download: no mirror reachable; installing Debian's copy of Fashion-MNIST (apt-get install {PACKAGE})")
    install = [apt, "install", "-y", "-qq", PACKAGE]
    result = subprocess.run(install, capture_output=True, text=True)
    if result.returncode != 0:
        subprocess.run([apt, "update", "-qq"], capture_output=True)  # a fresh machine's package lists may be empty
        result = subprocess.run(install, capture_output=True, text=True)
    if result.returncode != 0:
        said = (result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}").splitlines()[-1]
        by_hand = f"apt-get update && apt-get install {PACKAGE}"
        print(f"error: apt-get install {PACKAGE} failed: {said}; run it by hand: {by_hand}")
    return result.returncode


def main() -> int:
    return 0 if supplied() else install()


if __name__ == "__main__":
    raise SystemExit(main())
