"""``report.md``: one table per section from the ``results.json`` data.

Rendered from the JSON-ready dict (not from the section objects) so that a report can
be rebuilt from a saved ``results.json``.
"""
from __future__ import annotations

import json

HEADER = "| quantity | book | rnnlab (this run) | held out (not in the book) | match | tolerance | why not / note |"
RULE = "|---|---|---|---|---|---|---|"


def cell(value) -> str:
    """A table cell: lists as compact JSON, pipes escaped, never a line break."""
    if value is None:
        text = "-"
    elif isinstance(value, (list, dict)):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ") or " "


def render(results: dict) -> str:
    mode = ("`--quick`: fewer epochs (sections 8.4-8.6 and 8.7 train for a fraction of the book's budget, "
            "stated in each section), so the trained numbers are not the book's"
            if results["quick"] else "full: the book's settings (500 epochs for sections 8.4-8.6)")
    lines = [
        "# Dive into Deep Learning, chapter 8 (RNNs), reproduced by rnnlab",
        "",
        f"- mode: {mode}",
        f"- wall time: {results['wall_seconds']:.1f} s on the CPU with {results['threads']} thread(s); "
        f"rnnlab {results['rnnlab']}, torch {results['torch']}, seed {results['seed']}",
        f"- rows compared with the book: {results['compared']}, matching: {results['matched']}",
        "",
    ]
    for section in results["sections"]:
        lines += [f"## {section['key']} {section['title']}", "",
                  f"({section['seconds']:.1f} s)", "", HEADER, RULE]
        for row in section["rows"]:
            lines.append("| " + " | ".join(cell(row[k]) for k in
                                            ("quantity", "book", "ours", "held_out", "match", "tolerance", "why"))
                         + " |")
        lines.append("")
        for note in section["notes"]:
            lines += [f"Note: {note}", ""]
        for figure in section["figures"]:
            lines += [f"![{section['key']}]({figure})", ""]
    return "\n".join(lines)
