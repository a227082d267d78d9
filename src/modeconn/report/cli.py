"""`modeconn-report DIR... [--paper NAME] [--out OUT]`: the papers' tables from results.json files."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modeconn.report import anokhin, benton, fort, garipov, kuditipudi, tatro
from modeconn.report.collect import load_runs

PAPERS = {"anokhin2020": anokhin.report, "benton2021": benton.report, "fort2019": fort.report,
          "garipov2018": garipov.report, "kuditipudi2019": kuditipudi.report,
          "tatro2020": tatro.report}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modeconn-report", description=__doc__)
    parser.add_argument("dirs", nargs="+", help="run or sweep directories (searched for results.json)")
    parser.add_argument("--paper", choices=sorted(PAPERS), action="append",
                        help="which table(s); default: every table the runs allow")
    parser.add_argument("--out", type=Path, help="also write <paper>.md files into this directory")
    args = parser.parse_args(argv)
    runs = load_runs(args.dirs)
    if not runs:
        print(f"modeconn-report: no results.json with status ok under {' '.join(args.dirs)}", file=sys.stderr)
        return 2
    for paper in args.paper or sorted(PAPERS):
        text = PAPERS[paper](runs)
        if not text.strip():
            continue
        print(text)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{paper}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
