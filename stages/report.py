"""The pull-request report (not a DVC stage): what changed against a base revision, as Markdown.

    python -m stages.report --base main --out report/
writes report/report.md (the comment), report/curves.png and report/report.json (the numbers).
"""

import argparse
from pathlib import Path

from fmnist.core import cli, files, paths
from fmnist.report import plots
from fmnist.report import pull_request as report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="main", help="git revision to compare against (default: main)")
    parser.add_argument("--out", default="report", type=Path, help="directory for the report files")
    args = parser.parse_args()

    params = report.param_changes(args.base)
    metrics = report.metric_changes(args.base)
    board_path = paths.REPORTS / "leaderboard.md"
    board = board_path.read_text() if board_path.exists() else "No leaderboard: run `dvc repro` first."
    plots.base_and_new(report.curves_at(args.base), report.curves_at(None), args.out / "curves.png")
    files.write_json(args.out / "report.json", {"base": args.base, "params": params, "metrics": metrics})
    files.write_text(args.out / "report.md", report.markdown(args.base, params, metrics, board, "curves.png"))
    print(f"report: {args.out / 'report.md'} ({len(params)} params changed, {len(metrics)} metric rows)")


if __name__ == "__main__":
    cli.run(main)
