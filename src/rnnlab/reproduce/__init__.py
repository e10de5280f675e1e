"""``rnnlab reproduce``: every experiment of the RNN chapter, with the book's numbers beside ours.

One module per section of Dive into Deep Learning's chapter 8 (see :data:`SECTIONS`);
each returns rows (what the book prints, what rnnlab measured, held-out numbers the
book does not show, whether they match within a stated tolerance and why not) and
figures. :func:`reproduce` runs the chosen sections and writes ``report.md``,
``results.json`` and the figures into one output folder, checked first with the rule
every command uses (:func:`rnnlab.checkpoint.prepare_output_folder`).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from rnnlab import __version__
from rnnlab.checkpoint import FORMAT, prepare_output_folder
from rnnlab.errors import UsageError
from rnnlab.fileio import atomic_write
from rnnlab.jsonout import dumps
from rnnlab.progress import logger
from rnnlab.reproduce import beyond, bptt, language_models, rnn, sequence_models, text_preprocessing
from rnnlab.reproduce.common import Context, Row, SectionResult
from rnnlab.reproduce.report import render

SECTIONS = {module.KEY: module for module in (sequence_models, text_preprocessing, language_models, rnn, bptt,
                                                     beyond)}
# The RNN sections are one experiment; each of their numbers names it.
ALIASES = {"8.4": "8.4-8.6", "8.5": "8.4-8.6", "8.6": "8.4-8.6"}
KIND = "reproduction"
DEFAULT_OUT = "runs/reproduce"


def parse_sections(only: str | None) -> list[str]:
    """``"8.2,8.3"`` -> the section keys in chapter order; None -> all of them."""
    if only is None:
        return list(SECTIONS)
    wanted = set()
    for part in (p.strip() for p in only.split(",")):
        if not part:
            continue
        key = ALIASES.get(part, part)
        if key not in SECTIONS:
            raise UsageError(f"unknown section '{part}'; choose from {', '.join(SECTIONS)} (or 8.4, 8.5, 8.6)")
        wanted.add(key)
    if not wanted:
        raise UsageError("--only names no section; give e.g. --only 8.2,8.3")
    return [key for key in SECTIONS if key in wanted]


def reproduce(out_dir: str | os.PathLike = DEFAULT_OUT, quick: bool = False, only: str | None = None,
              overwrite: bool = False, data_dir: str | None = None, seed: int = 0) -> dict:
    """Run the sections, write ``report.md``, ``results.json`` and figures into ``out_dir``.

    Returns what ``results.json`` holds. The folder is checked before any work: an
    earlier reproduction there is replaced only with ``overwrite``.
    """
    keys = parse_sections(only)
    folder = prepare_output_folder(out_dir, KIND, overwrite=overwrite)
    # Marks the folder as ours from the start, so a reproduction cut short can be overwritten.
    atomic_write(folder / "config.json", (dumps({"format": FORMAT, "kind": KIND, "quick": quick, "sections": keys,
                                                 "seed": seed}, indent=1) + "\n").encode("utf-8"))
    context = Context(out_dir=folder, quick=quick, data_dir=data_dir, seed=seed)
    started = time.perf_counter()
    sections = []
    for key in keys:
        module = SECTIONS[key]
        logger.info("reproducing %s %s%s", key, module.TITLE, " (--quick)" if quick else "")
        section_started = time.perf_counter()
        section: SectionResult = module.run(context)
        section.seconds = time.perf_counter() - section_started
        sections.append(section)
    results = {
        "quick": quick, "sections": [s.to_dict() for s in sections], "seed": seed,
        "wall_seconds": round(time.perf_counter() - started, 1), "threads": torch.get_num_threads(),
        "rnnlab": __version__, "torch": torch.__version__, "out": str(folder),
        "matched": sum(r.match == "yes" for s in sections for r in s.rows),
        "compared": sum(r.match in ("yes", "no") for s in sections for r in s.rows),
    }
    atomic_write(folder / "results.json", (dumps(results, indent=1) + "\n").encode("utf-8"))
    atomic_write(folder / "report.md", render(results).encode("utf-8"))
    return results


__all__ = ["reproduce", "parse_sections", "SECTIONS", "Context", "Row", "SectionResult"]
