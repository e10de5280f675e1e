"""Stop requests that arrive as signals (SIGTERM), acted on where it is safe.

A signal handler runs between two bytecodes of whatever the main thread is doing: an
import of a C extension, a logging lock, a PNG being written. Raising there can leave
the interpreter unable to shut down cleanly. Inside :func:`deferred` (the training loop
wraps its work in it) a request is only recorded, and :func:`raise_if_requested` raises
it at the next safe point (the end of a training step), so the run stops at a step
boundary and saves its checkpoint. A request that comes after the last step (during
the final evaluation) is dropped with a log line: the run ends as planned and is saved.
Outside, the request is raised at once.
"""
from __future__ import annotations

from contextlib import contextmanager

from rnnlab.progress import logger

_deferring = 0
_pending: type[BaseException] | None = None


def stop_requested(exception: type[BaseException]) -> None:
    """Called from a signal handler: raise ``exception`` now, or at the next safe point."""
    global _pending
    if _deferring:
        _pending = _pending or exception  # a second signal changes nothing
        return
    raise exception()


def raise_if_requested() -> None:
    """A safe point: raise the pending request, if any."""
    global _pending
    if _pending is not None:
        exception, _pending = _pending, None
        raise exception()


@contextmanager
def deferred():
    """Record stop requests instead of raising them mid-operation (see the module docstring)."""
    global _deferring, _pending
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending is not None:
            _pending = None  # raised at a safe point, or too late to matter: the work is saved
            logger.info("a stop request came after the last step; the run ended as planned")
