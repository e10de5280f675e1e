"""One exception hierarchy for the whole library.

The CLI maps every :class:`RnnlabError` to ``error: <message>`` on stderr and the
class's ``exit_code`` (2 for usage mistakes, 1 for data and runtime problems);
anything else is a bug and keeps its traceback.
"""


class RnnlabError(Exception):
    """Base class: a problem the user can fix; the message says what and how."""

    exit_code = 1


class UsageError(RnnlabError, ValueError):
    """An option or argument has an invalid value (unknown name, non-positive size...)."""

    exit_code = 2


class DataError(RnnlabError):
    """Input data cannot be used: missing, empty, undecodable, too short."""


class CorpusNotFoundError(DataError, FileNotFoundError):
    """A corpus name or path does not resolve to readable text."""


class CheckpointError(RnnlabError):
    """A folder is not a valid rnnlab checkpoint, or does not match the request."""


class TrainingError(RnnlabError):
    """Training cannot go on (for example the loss became NaN or infinite)."""
