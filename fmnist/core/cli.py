"""The shared entry-point wrapper of every stage."""

import signal
import sys
from collections.abc import Callable

from fmnist.core.errors import FmnistError


def run(main: Callable[[], None]) -> None:
    """Run a stage; a user-fixable error becomes one line on stderr and exit status 2."""
    # SIGTERM unwinds like Ctrl-C, so atomic writes in progress remove their temporary files.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        main()
    # One write per line: print() writes the newline apart, so concurrent ranks could interleave.
    except FmnistError as error:
        sys.stderr.write(f"error: {error}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: outputs left complete or absent\n")
        sys.exit(130)
