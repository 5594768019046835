"""A first run offline: Debian's copy of Fashion-MNIST, installed when nothing else can supply the files.

    python -m fmnist.data.offline        (make repro runs it before dvc repro)

Does nothing when the files are already here, $FASHION_MNIST_DIR names them, Debian's package is
installed, or an official mirror answers. Otherwise installs dataset-fashion-mnist with apt-get as
root, or says which sudo command to run.
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
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if subprocess.run([apt, "install", "-y", "-qq", PACKAGE], **quiet).returncode != 0:
        subprocess.run([apt, "update", "-qq"], **quiet)  # a fresh machine's package lists may be empty
        return subprocess.run([apt, "install", "-y", "-qq", PACKAGE], **quiet).returncode
    return 0


def main() -> int:
    return 0 if supplied() else install()


if __name__ == "__main__":
    raise SystemExit(main())
