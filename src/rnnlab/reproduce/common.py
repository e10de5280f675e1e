"""What every section of ``rnnlab reproduce`` returns, and how rows are compared.

A section is a function ``run(context) -> SectionResult``. Each row puts one number (or
list, or text) the book prints beside what rnnlab measured in this run, with the
held-out figures the book does not show, whether the two match within a stated
tolerance, and why not when they do not.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

NOT_COMPARED = "-"


@dataclass
class Context:
    """What the sections share: where figures go, how long to train, where the data is."""

    out_dir: Path
    quick: bool = False
    data_dir: str | None = None
    seed: int = 0
    cache: dict = field(default_factory=dict)  # datasets loaded once and shared by sections

    def figure(self, name: str) -> Path:
        return self.out_dir / name


@dataclass
class Row:
    quantity: str
    book: object
    ours: object
    held_out: object = ""        # a number the book does not show (validation text, baselines)
    match: str = NOT_COMPARED    # "yes", "no", or "-" when the book prints nothing to compare
    tolerance: str = ""
    why: str = ""                # the reason when match is "no" (or a note on the comparison)

    def to_dict(self) -> dict:
        return {"quantity": self.quantity, "book": self.book, "ours": self.ours, "held_out": self.held_out,
                "match": self.match, "tolerance": self.tolerance, "why": self.why}


@dataclass
class SectionResult:
    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)   # file names inside the output folder
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)        # everything else measured, for results.json
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"key": self.key, "title": self.title, "rows": [row.to_dict() for row in self.rows],
                "figures": self.figures, "notes": self.notes, "details": self.details,
                "seconds": round(self.seconds, 2)}


def exact(quantity: str, book, ours, why_if_not: str = "", held_out="") -> Row:
    """A row compared for equality."""
    same = book == ours
    return Row(quantity, book, ours, held_out=held_out, match="yes" if same else "no", tolerance="exact",
               why="" if same else why_if_not)


def within(quantity: str, book: float, ours: float | None, tolerance: float, why_if_not: str = "",
           held_out="") -> Row:
    """A row compared as ``|ours - book| <= tolerance``."""
    ok = ours is not None and abs(ours - book) <= tolerance
    return Row(quantity, book, None if ours is None else round(ours, 4), held_out=held_out,
               match="yes" if ok else "no", tolerance=f"±{tolerance:g}", why="" if ok else why_if_not)


class Timer:
    """``with Timer() as t: ...; t.seconds``"""

    def __enter__(self) -> "Timer":
        self.started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.started
