"""`modeconn-report DIR... [--wandb ENTITY/PROJECT] [--paper NAME] --out OUT`: the papers'
tables (markdown, LaTeX, CSV) and an HTML dashboard comparing methods, from results.json
files under DIRs or from a W&B project's runs (the same records, the same code)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modeconn.report import anokhin, benton, fort, frankle, garipov, jordan, kuditipudi, tatro, transformers
from modeconn.report.collect import MissingRunDirectory, load_runs
from modeconn.report.table import as_tables, render

# paper -> runs -> list[Table] (or, for modules in the older style, markdown text; see report/table.py)
PAPERS = {"anokhin2020": anokhin.tables, "benton2021": benton.tables, "fort2019": fort.tables,
          "frankle2020": frankle.tables, "garipov2018": garipov.tables, "jordan2023": jordan.tables,
          "kuditipudi2019": kuditipudi.tables, "tatro2020": tatro.tables, "transformers": transformers.tables}
FORMATS = ("md", "tex", "csv")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modeconn-report", description=__doc__)
    parser.add_argument("dirs", nargs="*", help="run or sweep directories (searched for results.json)")
    parser.add_argument("--wandb", action="append", default=[], metavar="ENTITY/PROJECT",
                        help="also read the finished runs of this W&B project (needs WANDB_API_KEY or wandb login)")
    parser.add_argument("--paper", choices=sorted(PAPERS), action="append",
                        help="which table(s); default: every table the runs allow")
    parser.add_argument("--out", type=Path,
                        help="write <paper>.md/.tex/.csv and dashboard.html into this directory")
    parser.add_argument("--no-dashboard", action="store_true", help="tables only")
    parser.add_argument("--wandb-report", metavar="ENTITY/PROJECT",
                        help="also save a W&B report comparing the methods of these runs' settings (needs a login)")
    args = parser.parse_args(argv)
    if not args.dirs and not args.wandb:
        parser.error("give run/sweep directories, --wandb ENTITY/PROJECT, or both")
    try:
        runs = load_runs(args.dirs, warn=lambda message: print(f"modeconn-report: warning: {message}", file=sys.stderr))
    except MissingRunDirectory as e:
        print(f"modeconn-report: error: {e}", file=sys.stderr)
        return 2
    for project in args.wandb:
        from modeconn.report.wandb_source import load_wandb_runs
        runs += load_wandb_runs(project)
    if not runs:
        sources = " ".join([*args.dirs, *(f"W&B {p}" for p in args.wandb)])
        print(f"modeconn-report: no results.json with status ok in {sources}", file=sys.stderr)
        return 2
    for paper in args.paper or sorted(PAPERS):
        made = PAPERS[paper](runs)
        tables = as_tables(made)
        if not tables:
            continue
        # an older module's own markdown is kept as it wrote it; LaTeX and CSV come from its parsed tables
        texts = {fmt: made if fmt == "md" and isinstance(made, str) else render(tables, fmt) for fmt in FORMATS}
        print(texts["md"])
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            for fmt, text in texts.items():
                (args.out / f"{paper}.{fmt}").write_text(text)
            if paper == "frankle2020":
                print(f"instability plot: {frankle.plot_instability(runs, args.out / 'instability.png')}")
    if args.out and not args.no_dashboard:
        from modeconn.report.dashboard import write_dashboard
        page = write_dashboard(runs, args.out / "dashboard.html")
        print(f"dashboard: {page} (open it in a browser; no server needed)")
    if args.wandb_report:
        from modeconn.report.wandb_dashboard import save_comparison_report
        print(f"W&B report: {save_comparison_report(args.wandb_report, runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
