"""Stage download: the four original IDX files, verified, into data/raw/."""

import sys

from fmnist.core import cli, files, paths
from fmnist.data import sources


def main() -> None:
    fetched = sources.fetch_all(sources.default_sources())
    for reason in fetched.skipped:
        print(f"warning: {reason}; skipped", file=sys.stderr)
    with files.atomic_dir(paths.RAW) as staging:
        for name, content in fetched.files.items():
            (staging / name).write_bytes(content)
    print(f"download: {len(fetched.files)} verified files from {fetched.source} in {paths.RAW}/")


if __name__ == "__main__":
    cli.run(main)
