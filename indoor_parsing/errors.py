"""User-facing errors: one ``error: <file>: <problem>`` line and a non-zero exit instead of a traceback.

A :class:`UserError` is a mistake in what the user gave (a file, a folder, an option), never a bug of ours; its
message names the file and the problem (and, where one is known, the fix). The command entry points run through
:func:`exit_cleanly`, which prints such an error as one line on stderr and exits with status 2; any other exception
keeps its traceback, because it is a bug to report.
"""

import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
EXIT_STATUS = 2


class UserError(Exception):
    """Bad input from the user; the message is ``<file>: <problem>``."""


def exit_cleanly(run: Callable[[], T]) -> T:
    """``run()``; a :class:`UserError` becomes ``error: <message>`` on stderr and ``SystemExit(2)``."""
    try:
        return run()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_STATUS) from None
