"""Settings of ``tokenmix report``: a torch-free dataclass, one command-line flag per field."""

from __future__ import annotations

from dataclasses import dataclass

from tokenmix.options import OVERWRITE_HELP, option


@dataclass
class ReportConfig:
    runs_dir: str = option("", "folder searched recursively for run summaries", positional=True)
    out: str = option("report", "folder for report.md and the plots (created)", output="folder")
    paper_rows: bool = option(True, "add the FNet paper's GLUE rows (Base models) for the models in the report")
    overwrite: bool = option(False, OVERWRITE_HELP)

    def __post_init__(self) -> None:
        if not self.runs_dir:
            raise ValueError("give the folder that holds the runs: tokenmix report RUNS_DIR --out DIR")
