"""The demo end to end at toy size (each model trains for ~2 s in its own process)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tokenmix.train.configs import DemoConfig
from tokenmix.train.demo import format_demo_table, run_demo

FIELDS = {"model", "preset", "params", "seq_len", "batch_size", "steps", "steps_per_s", "tokens_per_s",
          "peak_mem_bytes", "train_seconds", "accuracy", "majority_baseline", "device"}


def test_config_fields_are_cli_ready():
    for f in dataclasses.fields(DemoConfig):
        assert f.metadata.get("help"), f"{f.name} needs metadata help for its CLI flag"
    assert DemoConfig().models == ("fnet", "bert") and DemoConfig().preset == "tiny"
    assert DemoConfig().seq_len == 1024 and DemoConfig().json is None


@pytest.mark.parametrize("bad", [dict(models=()), dict(batch_size=0), dict(seconds=0), dict(eval_size=0)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        DemoConfig(**bad)


def test_unknown_model_fails_before_training():
    with pytest.raises(ValueError, match="unknown model"):
        run_demo(DemoConfig(models=("fnet", "nope"), seconds=1))


def test_run_demo_small(tmp_path):
    out = tmp_path / "demo.json"
    config = DemoConfig(seq_len=64, batch_size=8, seconds=2.0, train_size=200, eval_size=50,
                        max_depth=2, max_args=3, device="cpu", json=str(out))
    results = run_demo(config)
    assert [r["model"] for r in results] == ["fnet", "bert"]
    for r in results:
        assert set(r) == FIELDS
        assert r["preset"] == "tiny" and r["seq_len"] == 64 and r["batch_size"] == 8
        assert r["params"] > 0 and r["steps"] >= 1 and r["peak_mem_bytes"] >= 0
        assert r["train_seconds"] >= 2.0  # the budget is used up (no wall-clock upper bound: machines differ)
        assert r["steps_per_s"] == pytest.approx(r["steps"] / r["train_seconds"])
        assert r["tokens_per_s"] == pytest.approx(r["steps_per_s"] * 8 * 64)
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.1 <= r["majority_baseline"] <= 1.0
        assert r["device"].startswith("cpu")
    saved = json.loads(out.read_text())
    assert saved["results"] == results and saved["config"]["seq_len"] == 64

    table = format_demo_table(results)
    assert "fnet" in table and "bert" in table and "majority" in table
    assert "x the steps/s of bert" in table


def test_cli_demo_json_keeps_config_and_results(tmp_path, capsys):
    from tokenmix.cli.main import main

    out = tmp_path / "sub" / "demo.json"
    assert main(["demo", "--models", "fnet", "--seq-len", "32", "--seconds", "1", "--train-size", "50",
                 "--eval-size", "20", "--max-depth", "1", "--max-args", "3", "--device", "cpu", "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert set(saved) == {"config", "results"} and saved["results"][0]["model"] == "fnet"
    assert "ListOps demo" in capsys.readouterr().out
