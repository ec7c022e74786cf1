"""`rlcyclegan report`: render experiment results as a markdown report with plots and translation grids."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import tyro


@dataclass
class ReportArgs:
    """Write OUT/report.md (tables beside the paper's numbers, plots with 95% intervals, translation grids, the
    commands and configs that produced the results) and OUT/report.json. Same results, same report, byte for byte."""

    results: tuple[Path, ...]
    """Experiment folders (holding results.jsonl), results.jsonl files, or a folder of experiment folders."""
    out: Path = Path("results")
    """Folder of the report."""
    grids: bool = True
    """Draw each method's translations of the same sim states (needs the run folders and renders the env)."""


def main(argv: list[str]) -> int:
    args = tyro.cli(ReportArgs, args=argv, prog="rlcyclegan report")
    from rlcyclegan.experiments.report import ReportError, write_report

    try:
        path = write_report(args.results, args.out, grids=args.grids)
    except ReportError as e:
        print(f"rlcyclegan report: {e}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0
