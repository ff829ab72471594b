"""Loggers that import :mod:`logging` only when a record is going to be written.

Importing logging takes about 5 ms (it brings traceback, string and more),
a large share of an up-to-date run, which writes no record unless -v is
given. The CLI passes its threshold and its logging set-up to
:func:`configure`; records below the threshold are dropped here, and the
set-up runs before the first record that is not.
"""

from __future__ import annotations

from typing import Any, Callable

DEBUG = 10
INFO = 20
WARNING = 30
ERROR = 40

_threshold: int | None = None  # None: nothing configured, every record goes to logging
_pending_setup: Callable[[], None] | None = None


def configure(threshold: int, setup: Callable[[], None] | None) -> None:
    """Drop records below *threshold*; call *setup* before the first record that passes."""
    global _threshold, _pending_setup
    _threshold = threshold
    _pending_setup = setup


def setup() -> None:
    """Run the logging set-up now if it is still pending, before code that uses logging itself."""
    global _pending_setup
    if _pending_setup is not None:
        pending, _pending_setup = _pending_setup, None
        pending()


class Logger:
    """The subset of :class:`logging.Logger` that certpipe's up-to-date path uses."""

    def __init__(self, name: str):
        self.name = name

    def _log(self, level: int, message: str, args: tuple[Any, ...]) -> None:
        if _threshold is not None and level < _threshold:
            return
        setup()
        import logging

        logging.getLogger(self.name).log(level, message, *args)

    def debug(self, message: str, *args: Any) -> None:
        self._log(DEBUG, message, args)

    def info(self, message: str, *args: Any) -> None:
        self._log(INFO, message, args)

    def warning(self, message: str, *args: Any) -> None:
        self._log(WARNING, message, args)

    def error(self, message: str, *args: Any) -> None:
        self._log(ERROR, message, args)


def get_logger(name: str) -> Logger:
    return Logger(name)
