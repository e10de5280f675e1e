"""``rnnlab reproduce``: the chapter's experiments beside the book's numbers (see rnnlab.reproduce)."""
from __future__ import annotations

from rnnlab.cli.common import add_overwrite_option, emit


def cmd_reproduce(args) -> int:
    from rnnlab.reproduce import reproduce  # lazy: keeps rnnlab --help from loading rnnlab.reproduce

    results = reproduce(args.out, quick=args.quick, only=args.only, overwrite=args.overwrite,
                        data_dir=args.data_dir)
    if not args.json:
        for section in results["sections"]:
            compared = [row for row in section["rows"] if row["match"] in ("yes", "no")]
            matched = sum(row["match"] == "yes" for row in compared)
            verdict = (f"{matched} of {len(compared)} rows match the book" if compared
                       else "the book prints no numbers to compare")
            print(f"{section['key']:<8} {section['title']}: {verdict} ({section['seconds']:.1f} s)")
        print(f"report   {results['out']}/report.md (wall time {results['wall_seconds']:.1f} s"
              f"{', --quick: fewer epochs' if results['quick'] else ''})")
    emit(results, args.json)
    return 0


def add_parser(commands) -> None:
    """Register ``rnnlab reproduce`` on the main parser's subparsers."""
    rep = commands.add_parser("reproduce", help="run the chapter's experiments; the book's numbers beside ours",
                              description="Run the experiments of d2l chapter 8 (sections 8.1-8.7, then "
                                          "beyond the book: the five cells for the same CPU time) and write "
                                          "DIR/report.md, DIR/results.json and the figures.")
    rep.add_argument("--out", default="runs/reproduce", metavar="DIR", help="output folder (default runs/reproduce)")
    rep.add_argument("--quick", action="store_true", help="fewer epochs (stated in the report): about 2-3 minutes")
    rep.add_argument("--only", default=None, metavar="SECTION,...",
                     help="run only these sections: 8.1, 8.2, 8.3, 8.4-8.6 (or 8.4, 8.5, 8.6), 8.7, beyond")
    rep.add_argument("--data-dir", default=None, help="folder holding timemachine.txt (default: $RNNLAB_DATA, then the user cache)")
    add_overwrite_option(rep, "an earlier reproduction in --out")
    rep.add_argument("--json", action="store_true", help="print results.json's object on the last line")
    rep.set_defaults(handler=cmd_reproduce)
