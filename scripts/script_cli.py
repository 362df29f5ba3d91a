"""What every script's command line shares, importing no ranker (make_snapshot.py, bench_load.py and
bench_memory.py run without it): a usage error is one line and status 1, as `ranker`'s own errors end; a path
given that cannot be read or written is one line naming it, not a traceback."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, NoReturn


class Parser(argparse.ArgumentParser):
    """argparse's parser whose error() (an unknown flag, a bad value, a script's own ap.error) ends the script with
    one line `error: MESSAGE` on stderr and status 1, not the usage text and status 2; --help is as argparse has
    it. Subparsers are of this class too (add_subparsers makes them of the parent's type)."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"error: {message}\n")


def one_line(main: Callable[[], int | None]) -> int | None:
    """A script's main() that imports no ranker (make_snapshot.py, bench_load.py, bench_memory.py) ended as a
    command is: a path given that cannot be read or written (an OSError) is one line on stderr naming it and status
    1, not a traceback; RANKER_DEBUG=1 shows the traceback. Its return value is the script's status."""
    try:
        return main()
    except OSError as e:
        if os.environ.get("RANKER_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off"):
            raise
        where = e.filename2 if e.filename2 is not None else e.filename     # os.replace's: the file asked for
        said = e.strerror or str(e)
        said = said[:1].lower() + said[1:]
        sys.exit(f"error: {where}: {said}" if where is not None else f"error: {said}")
