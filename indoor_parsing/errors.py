"""User mistakes as one line: ``error: <file>: <problem>; <fix>`` and a non-zero exit, never a traceback.

A :class:`UserError` is raised where a file the user named is missing or wrong (a data root, a checkpoint, a cache);
:func:`user_errors` wraps a command and turns it into that line. Errors raised inside DataLoader worker processes
come back wrapped in the worker's traceback text; :func:`error_line` recovers the original one-line message.
"""

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
EXIT_CODE = 2


class UserError(ValueError):
    """A mistake the user can fix; the message names the file, the problem and, where known, the fix.

    Args:
        where: the file or folder at fault (or a complete message when ``problem`` is None).
        problem: what is wrong with it.
        fix: what to do about it.
    """

    def __init__(self, where: str | Path, problem: str | None = None, fix: str | None = None):
        message = str(where) if problem is None else f"{where}: {problem}"
        super().__init__(message + (f"; {fix}" if fix else ""))
        self.fix = fix


def error_line(err: BaseException) -> str:
    """``error: <message>`` on one line (a DataLoader worker's wrapped traceback reduced to its original message)."""
    text = str(err).strip()
    if "Original Traceback" in text:  # torch.utils.data's ExceptionWrapper: the last line is "module.Class: message"
        last = text.splitlines()[-1]
        head, sep, rest = last.partition(": ")
        text = rest if sep and head.rsplit(".", 1)[-1] == type(err).__name__ else last
    return "error: " + " ".join(text.split("\n"))


def _user_error_in_chain(err: BaseException | None) -> UserError | None:
    """``err`` or the exception it was raised from (config parsers wrap the errors of constructors they call)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, UserError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


@contextlib.contextmanager
def user_errors(hints: Sequence[Callable[[str], str | None]] = ()) -> Iterator[None]:
    """Run the body; a :class:`UserError` prints :func:`error_line` to stderr and exits with status 2.

    Args:
        hints: functions of the message that return a fix to append (or None), for fixes only the caller knows.
    """
    try:
        yield
    except Exception as raised:  # noqa: BLE001  (only a UserError in the chain is handled; the rest re-raises)
        err = _user_error_in_chain(raised)
        if err is None:
            raise
        line = error_line(err)
        extra = [h for h in (hint(line.removeprefix("error: ")) for hint in hints) if h]
        print("; ".join([line, *extra]), file=sys.stderr)
        raise SystemExit(EXIT_CODE) from None


def exit_cleanly(run: Callable[[], T]) -> T:
    """``run()`` inside :func:`user_errors`: a user's mistake becomes one ``error:`` line and exit status 2."""
    with user_errors():
        return run()
