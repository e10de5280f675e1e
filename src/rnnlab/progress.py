"""The only place the library talks to the user while it works.

A tqdm bar when stderr is a terminal, plain log lines otherwise (CI, pipes),
and a module logger for messages. Library code never calls ``print``.
"""
from __future__ import annotations

import logging
import sys
from typing import Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

logger = logging.getLogger("rnnlab")


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes each record to ``sys.stderr`` as it is when the record is emitted, not as it was
    when logging was configured: a caller (a test's capture, a redirect) may have replaced it."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(verbose: bool = True) -> None:
    """Send rnnlab's log records to stderr as bare lines (called by the CLI)."""
    if logger.handlers:
        logger.setLevel(logging.INFO if verbose else logging.WARNING)
        return
    handler = _CurrentStderrHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def is_interactive() -> bool:
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "",
             enabled: bool = True) -> Iterator[T]:
    """Wrap ``iterable`` in a progress bar on a terminal; pass it through otherwise."""
    if not (enabled and is_interactive() and logger.isEnabledFor(logging.INFO)):
        yield from iterable
        return

    with tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True) as bar:
        yield from bar


class ByteProgress:
    """A bar counting bytes (tqdm shows MB/s) on a terminal; a no-op otherwise.

    Use as a context manager and call :meth:`update` with the bytes just processed.
    """

    def __init__(self, total: int | None, desc: str = "", enabled: bool = True) -> None:
        self.total, self.desc = total, desc
        self.enabled = enabled and is_interactive() and logger.isEnabledFor(logging.INFO)
        self._bar = None

    def __enter__(self) -> "ByteProgress":
        if self.enabled:
            self._bar = tqdm(total=self.total, desc=self.desc, unit="B", unit_scale=True, unit_divisor=1024,
                             leave=False, dynamic_ncols=True)
        return self

    def update(self, nbytes: int) -> None:
        if self._bar is not None:
            self._bar.update(nbytes)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
