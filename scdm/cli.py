"""What every command line of the project shares: a user error is one line on stderr and exit code 2.

A user error is a `ValueError` (a bad value, option or config file) or an `OSError` (a missing, unreadable or
unwritable file); a bad flag is argparse's error. Each becomes `PROG: error: MESSAGE` and exit code 2, never a
traceback or a usage block. Anything else is a bug and keeps its traceback. The CLIs (`python -m scdm`,
`scdm.world`, `noise_sim`, `bench`, `bench.train_segmenter`, `demo`) build their parser with `ArgumentParser`
and run their work through `run`; the library code itself never prints.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, NoReturn

USER_ERRORS = (ValueError, OSError)
EXIT_USER_ERROR = 2  # argparse's own exit code for a bad command line


def message(error: BaseException) -> str:
    """The error as one line: an OSError as 'strerror: filename', any other as its text, newlines folded."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        text = f"{error.strerror}: {error.filename}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def report(prog: str, error: BaseException | str) -> int:
    """Print `PROG: error: MESSAGE` on stderr; return the exit code of a user error."""
    text = error if isinstance(error, str) else message(error)
    print(f"{prog}: error: {text}", file=sys.stderr, flush=True)
    return EXIT_USER_ERROR


def run(prog: str, work: Callable[[], int | None]) -> int:
    """`work()`'s exit code (None -> 0), or 2 with one line on stderr when it raises a user error."""
    try:
        code = work()
    except USER_ERRORS as e:
        return report(prog, e)
    return 0 if code is None else int(code)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose command-line errors are one line (`PROG: error: MESSAGE (see PROG --help)`) and exit 2."""

    def error(self, message: str) -> NoReturn:
        report(self.prog, f"{message} (see {self.prog} --help)")
        raise SystemExit(EXIT_USER_ERROR)
