"""`tokenmix reproduce` at a cut-down tiny scale: every stage, REPORT.md, resumption, refusals."""

import json
from pathlib import Path

import pytest

from tokenmix.cli import main
from tokenmix.reproduce import study
from tokenmix.reproduce.study import parse_budget

SHARED = Path(__file__).parents[2] / "shared" / "data"


def test_budget_parsing_and_refusals(capsys, tmp_path):
    assert parse_budget("2h") == 7200 and parse_budget("1h30m") == 5400 and parse_budget("45s") == parse_budget("45") == 45
    with pytest.raises(ValueError, match="not a duration"):
        parse_budget("soon")
    assert main(["reproduce", "--scale", "mini", "--budget", "10m", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "too small for --scale mini" in err and "what fits: --scale tiny" in err
    assert main(["reproduce", "--scale", "tiny", "--budget", "5m", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 1
    assert "missing data for the study" in capsys.readouterr().err


@pytest.mark.skipif(not (SHARED / "glue" / "SST-2").is_dir(), reason="needs ../shared/data")
def test_tiny_study_runs_every_stage_and_resumes(tmp_path, monkeypatch, capsys):
    tiny = {**study.SCALES["tiny"], "min_budget_s": 10, "corpus_mb": 0.3, "vocab_size": 400, "glue_tasks": ["sst2", "rte"],
            "glue_max_train_examples": 64, "bench_seq_lens": [64], "bench_repeats": 1, "eval_every": 5}
    monkeypatch.setitem(study.SCALES, "tiny", tiny)
    out = tmp_path / "study"
    args = ["reproduce", "--scale", "tiny", "--budget", "40s", "--models", "bert,fnet", "--data", str(SHARED),
            "--out", str(out), "--device", "cpu"]
    assert main(args) == 0
    report = (out / "REPORT.md").read_text()
    for heading in ("Pretraining (like Table 1)", "equal steps", "GLUE dev (like Table 2)", "Speed (like Table 3)",
                    "Speed-accuracy (like Figure 2)", "claims at this scale"):
        assert heading in report
    assert (out / "pareto.png").is_file() and json.loads((out / "glue" / "fnet" / "glue.json").read_text())["scores"]
    capsys.readouterr()
    assert main(args) == 0  # everything is cached: only the report is rewritten
    assert capsys.readouterr().err.count("skipped") == 8
    assert main([*args[:-4], "--models", "bert", "--out", str(out), "--device", "cpu"]) == 1
    assert "another configuration (models: ['bert', 'fnet'] -> ['bert'])" in capsys.readouterr().err
