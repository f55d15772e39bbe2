"""LRA models and commands: configs per task, pooling, the two-tower head, save/load, run/eval/table
end to end on fixtures, and the speed table's records, failure reporting, markdown and exponent fit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import tokenmix
from tokenmix.cli.main import main
from tokenmix.lra import speed, table
from tokenmix.lra.configs import LRASpeedConfig
from tokenmix.lra.models import LEGACY_HEAD_FILE, load_lra_model
from tokenmix.lra.tasks import TASKS, get_lra_task, lra_model_config, model_overrides
from tokenmix.models.factory import build_model, create_model
from tokenmix.models.heads import TokenMixForLRA, TokenMixForLRATwoTower, pool
from tokenmix.models.registry import make_config

FIXTURES = Path(__file__).parent / "fixtures" / "lra"


def test_official_configs_and_lengths():
    preset, fields = model_overrides(get_lra_task("listops"), "lra", "cls", {})
    config = make_config("fnet", preset, **fields)
    assert (config.hidden_size, config.num_layers, config.num_heads, config.intermediate_size) == (512, 6, 8, 2048)
    assert config.max_position_embeddings == 2000 and config.vocab_size == 18
    text = make_config("bert", *model_overrides(get_lra_task("text"), "lra", "cls", {"dropout": 0.0})[:1],
                       **model_overrides(get_lra_task("text"), "lra", "cls", {"dropout": 0.0})[1])
    assert (text.hidden_size, text.num_layers, text.num_heads, text.intermediate_size) == (256, 4, 4, 1024)
    assert text.max_position_embeddings == 4096 and text.vocab_size == 258 and text.dropout == 0.0
    # Another preset keeps its sizes but still gets the task's vocabulary and length (mean pooling: no CLS).
    preset, fields = model_overrides(get_lra_task("pathfinder"), "tiny", "mean", {})
    assert preset == "tiny" and fields["max_position_embeddings"] == 1024 and "hidden_size" not in fields
    assert get_lra_task("path-x").image_size == 128 and get_lra_task("Pathfinder").name == "pathfinder32"
    with pytest.raises(ValueError, match="unknown LRA task"):
        get_lra_task("mnist")
    with pytest.raises(ValueError, match="pooling"):
        model_overrides(get_lra_task("text"), "lra", "max", {})
    assert all(spec.num_classes in (2, 10) for spec in TASKS.values())


def test_mean_pooling_ignores_padding_and_cls_takes_the_first_position():
    hidden = torch.arange(24, dtype=torch.float32).view(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    pooled = pool(hidden, mask, "mean")
    assert torch.allclose(pooled[0], hidden[0, :2].mean(0)) and torch.allclose(pooled[1], hidden[1].mean(0))
    assert torch.equal(pool(hidden, mask, "cls"), hidden[:, 0])


def tiny(task: str, pooling: str, name: str = "fnet") -> TokenMixForLRA:
    torch.manual_seed(0)
    model = build_model(lra_model_config(name, get_lra_task(task), "tiny", pooling,
                                         {"max_position_embeddings": 64, "dropout": 0.0}))
    assert isinstance(model, TokenMixForLRA)
    return model


def test_two_tower_combines_u_v_product_and_difference():
    model = tiny("retrieval", "mean").eval()
    assert isinstance(model, TokenMixForLRATwoTower) and model.config.head == "lra_two_tower"
    a, b = torch.randint(2, 258, (3, 64)), torch.randint(2, 258, (3, 64))
    out = model(a, torch.ones_like(a), torch.tensor([0, 1, 1]), b, torch.ones_like(b))
    assert out.logits.shape == (3, 2) and out.loss is not None and out.loss.item() > 0
    u, _ = model.encode(a, torch.ones_like(a))
    v, _ = model.encode(b, torch.ones_like(b))
    assert torch.allclose(out.pooler_output, torch.cat([u, v, u * v, u - v], -1), atol=1e-6)
    assert model.classifier[0].in_features == 4 * model.config.hidden_size
    with pytest.raises(ValueError, match="input_ids2"):
        model(a)


def test_save_and_load_roundtrip(tmp_path):
    model = tiny("image", "cls", name="bert").eval()
    ids = torch.randint(2, 258, (2, 64))
    model.save_pretrained(tmp_path / "m")
    again = load_lra_model(tmp_path / "m").eval()
    head_config = lambda m: (m.config.lra_task, m.config.num_labels, m.config.pooling, m.config.head)  # noqa: E731
    assert head_config(again) == head_config(model) == ("image", 10, "cls", "lra_classification")
    assert again.config == model.config
    assert torch.equal(model(ids).logits, again(ids).logits)
    # A plain model folder: the library's loader reads it like any other, and no side file is written.
    assert isinstance(tokenmix.load_pretrained(tmp_path / "m"), TokenMixForLRA)
    assert not (tmp_path / "m" / LEGACY_HEAD_FILE).exists()
    create_model("fnet", "tiny", head="classification").save_pretrained(tmp_path / "plain")
    with pytest.raises(ValueError, match="not an LRA classifier"):
        load_lra_model(tmp_path / "plain")


def save_in_the_old_layout(model: TokenMixForLRA, directory: Path) -> None:
    """What `lra run` wrote before the LRA heads: a headless config.json plus lra.json."""
    model.save_pretrained(directory)
    config = json.loads((directory / "config.json").read_text())
    head = {"task": config.pop("lra_task"), "num_classes": config["num_labels"], "pooling": config.pop("pooling"),
            "dual": config["head"] == "lra_two_tower"}
    config.update(head="none", num_labels=2)
    (directory / "config.json").write_text(json.dumps(config))
    (directory / LEGACY_HEAD_FILE).write_text(json.dumps(head))


@pytest.mark.parametrize("task, pooling", [("listops", "cls"), ("retrieval", "mean")])
def test_an_old_lra_folder_is_read_once_and_converted(tmp_path, capsys, task, pooling):
    model = tiny(task, pooling).eval()
    save_in_the_old_layout(model, tmp_path / "old")
    ids = torch.randint(2, 18, (2, 64))
    inputs = {"input_ids2": ids.flip(0)} if task == "retrieval" else {}
    again = load_lra_model(tmp_path / "old").eval()
    note = capsys.readouterr().err
    assert "old layout" in note and f"head={model.config.head!r}" in note and "converted" in note
    assert again.config == model.config and torch.equal(model(ids, **inputs).logits, again(ids, **inputs).logits)
    # Converted in place: a plain model folder from now on, read without a note.
    assert not (tmp_path / "old" / LEGACY_HEAD_FILE).exists()
    assert load_lra_model(tmp_path / "old").config == model.config and capsys.readouterr().err == ""
    assert tokenmix.load_pretrained(tmp_path / "old").config.lra_task == task


def test_a_broken_old_lra_json_is_a_clear_error(tmp_path):
    save_in_the_old_layout(tiny("listops", "cls"), tmp_path / "old")
    (tmp_path / "old" / LEGACY_HEAD_FILE).write_text('{"task": "listops"}')
    with pytest.raises(ValueError, match="lra.json is not a valid LRA head description"):
        load_lra_model(tmp_path / "old")


def test_lra_configs_import_without_torch():
    code = "import sys, tokenmix.lra.configs; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lra_run_eval_and_table_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["lra", "run", "listops", "--data-dir", str(FIXTURES / "listops"), "--cache-dir",
            str(tmp_path / "cache"), "--preset", "tiny", "--override", "dropout=0.0", "--batch-size", "2",
            "--max-steps", "3", "--eval-every", "1", "--out", str(out), "--lr", "1e-3"]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "test accuracy" in printed.out and "2 malformed rows skipped" in printed.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["sizes"] == {"train": 4, "val": 2, "test": 2}
    assert summary["data"]["train"]["malformed_rows"] == 2 and 0 <= summary["test_accuracy"] <= 1
    assert summary["root_op_baseline"] == 0.0  # train: MAX -> 3 (tie 3/9, lowest wins), SM -> 2; test: MAX = 2, SM = 3
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert summary["best_step"] == max(evals, key=lambda e: (e["accuracy"], -e["step"]))["step"]
    assert main(args) == 1 and "already holds" in capsys.readouterr().err  # never silently reuses a run

    result = tmp_path / "eval.json"
    assert main(["lra", "eval", "listops", "--checkpoint", str(out), "--data-dir", str(FIXTURES / "listops"),
                 "--cache-dir", str(tmp_path / "cache"), "--split", "test", "--json", str(result)]) == 0
    record = json.loads(result.read_text())
    assert record["examples"] == 2 and record["accuracy"] == pytest.approx(summary["test_accuracy"])
    assert record["root_op_baseline"] == 1.0  # fitted on the two test rows themselves (one per operator)
    assert record["data_dir"] == str(FIXTURES / "listops")  # the table names where the scored data came from
    scored = {}  # --split all scores every example of the folder: the three splits' counts together
    for split in ("train", "val", "test", "all"):
        assert main(["lra", "eval", "listops", "--checkpoint", str(out), "--data-dir", str(FIXTURES / "listops"),
                     "--cache-dir", str(tmp_path / "cache"), "--split", split, "--json", str(result), "--overwrite"]) == 0
        scored[split] = json.loads(result.read_text())
    assert scored["all"]["examples"] == 8 and set(scored["all"]["data"]) == {"train", "val", "test"}
    correct = sum(scored[s]["accuracy"] * scored[s]["examples"] for s in ("train", "val", "test"))
    assert scored["all"]["accuracy"] == pytest.approx(correct / 8)
    assert main(["lra", "eval", "text", "--checkpoint", str(out), "--data-dir", str(FIXTURES / "text")]) == 1
    assert "trained on 'listops'" in capsys.readouterr().err

    assert main(["lra", "table", "--runs", str(tmp_path), "--markdown", str(tmp_path / "t.md")]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].startswith("| Model | ListOps | Text | Retrieval | Image | Pathfinder | Path-X | Avg |")
    assert f"{100 * summary['test_accuracy']:.2f}" in table.splitlines()[2]


def lra_record(task: str, model: str, accuracy: float, steps: int, **extra) -> dict:
    train = {"generator": 2} if task.startswith("pathfinder") else {}
    return {"kind": "lra", "task": task, "model": model, "test_accuracy": accuracy, "val_accuracy": accuracy,
            "steps": steps, "sizes": {"train": 160_000}, "data": {"train": train}, "path": "runs/x",
            "config": {"max_len": 0, "batch_size": TASKS[task].train["batch_size"], "data_dir": ""}, **extra}


def test_lra_table_marks_budget_unmeasured_and_unavailable_cells(tmp_path):
    assert table.official_steps("text", 25_000) == 20_000  # max_steps
    assert table.official_steps("pathfinder32", 1_000) == 62_500  # 200 epochs of 160k images at batch 512
    assert table.official_steps("image", 45_000) == 35_157  # 200 epochs of the run's own 45k images at 256
    full = lra_record("text", "fnet", 0.6, 20_000)
    short = lra_record("pathfinder32", "fnet", 0.5, 900, stop_reason="max_time", at_chance=True)
    old = lra_record("pathfinder32", "linear", 0.7, 62_500, data={"train": {}})
    cut = lra_record("text", "linear", 0.55, 20_000, config={"max_len": 1000, "batch_size": 8}, preset="tiny",
                     data={"test": {"sampled_from": 25_000}}, sizes={"train": 23_000, "test": 5_000})
    assert table.shortfalls(full) == []
    fused = lra_record("image", "bert", 0.3, 35_157, sizes={"train": 45_000}, model_config={"pooling": "cls", "attention_dropout": 0.0, "dropout": 0.3},
                       config={"override": ["attention_dropout=0.0", "dropout=0.3"], "batch_size": 256, "max_len": 0})
    assert table.shortfalls(fused) == ["attention_dropout 0.0 (official 0.2)"]  # dropout=0.3 is the official value
    assert table.shortfalls(short) == ["900 of 62,500 steps (time limit)"]
    assert table.shortfalls(old) == ["images of an older generator, not the original's distribution"]
    assert table.shortfalls(cut) == ["preset tiny, not LRA's model configuration", "first 1000 of 4095 tokens",
                                     "test on 5,000 of 25,000 examples", "batch 8 (official 32)"]
    text = table.format_table(table.collect([full, short, old, cut]))
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in text.splitlines() if line.startswith("| ")}
    assert rows["fnet"][:6] == ["-", "60.00", "n/a", "-", "50.00 (chance)*", "-"]  # ListOps, Text ... Path-X
    assert rows["fnet"][6] == "55.00 (2 of 5 tasks) |"
    assert rows["linear"][1] == "55.00*" and rows["linear"][4] == "70.00*"
    assert rows["FNet (paper)"] == ["35.33", "65.11", "59.61", "38.67", "77.80", "FAIL", "55.30 |"]
    assert "- fnet Pathfinder: 900 of 62,500 steps (time limit)" in text
    assert "- Retrieval: AAN pairs not available here (reader tested on a fixture)" in text
    (tmp_path / "pf").mkdir()
    (tmp_path / "pf" / table.TRANSFER).write_text(json.dumps({"examples": 2000, "split": "all", "accuracy": 0.5525,
                                                              "majority_baseline": 0.503, "data_dir": "pf-original"}))
    text = table.format_table(table.collect([{**short, "path": str(tmp_path / "pf")}]))
    assert "- fnet Pathfinder on 2,000 examples of pf-original (transfer.json, split all): 55.25% (majority class 50.3%)" in text
    costs = table.format_costs(table.collect([full, lra_record("text", "bert", 0.58, 1200, best_step=900, train_seconds=2700.0,
                                                               steps_per_s=0.444, peak_memory_mib=2100.4,
                                                               majority_baseline=0.5, device="cpu (1 threads)")]))
    assert costs.splitlines()[2:] == ["| Text | fnet | 60.00 | - | - / 20,000 | - | - | - | - |",
                                      "| Text | bert | 58.00 | 50.0 | 900 / 1,200 | 45.0 | 0.444 | 2100 | cpu (1 threads) |"]


def test_speed_measure_and_failure_records(tmp_path):
    config = LRASpeedConfig(models=("fnet", "bert:attention_dropout=0.0"), seq_lens=(32,), warmup=0, repeats=1,
                            out=str(tmp_path), device="cpu", precision="bf16")
    record = speed.measure("bert:attention_dropout=0.0", 32, config)
    assert record["ms_per_step"] > 0 and record["params"] > 0 and record["model"] == "bert:attention_dropout=0.0"
    assert record["precision"] == "bf16"  # timed as `lra run` trains (its --precision), not always in fp32
    over = speed.run_limited("fnet", 64, LRASpeedConfig(models=("fnet",), time_budget=0.5, out=str(tmp_path)))
    assert over["error"] == "over budget" and over["ms_per_step"] is None
    with pytest.raises(ValueError, match="unknown model"):
        LRASpeedConfig(models=("gpt",))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="parent-death signal is Linux-only")
def test_a_speed_worker_dies_with_its_parent_even_on_sigkill():
    """A killed `lra speed` must not leave its measuring worker running (it would skew later runs)."""
    child = ("import os, time; from tokenmix.bench.measure import die_with_parent; "
             "die_with_parent(os.getppid()); print('armed', flush=True); time.sleep(120)")
    parent = ("import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', sys.argv[1]], stdout=subprocess.PIPE, text=True); "
              "c.stdout.readline(); print(c.pid, flush=True); time.sleep(120)")
    launcher = subprocess.Popen([sys.executable, "-c", parent, child], stdout=subprocess.PIPE, text=True)
    worker = int(launcher.stdout.readline())
    launcher.kill()
    launcher.wait()
    deadline = time.monotonic() + 20
    while alive(worker):
        assert time.monotonic() < deadline, "the worker outlived its SIGKILLed parent"
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # zombie = dead
    except FileNotFoundError:
        return False


def test_speed_table_markdown_plot_and_exponent(tmp_path):
    records = []
    for n in (512, 1024, 2048):
        records.append({"model": "bert", "seq_len": n, "ms_per_step": 1e-3 * n * n, "steps_per_s": 1e3 / (1e-3 * n * n),
                        "peak_mem_bytes": 4 * n * n, "device": "cpu"})
        records.append({"model": "fnet", "seq_len": n, "ms_per_step": 0.5 * n, "steps_per_s": 1e3 / (0.5 * n),
                        "peak_mem_bytes": 1000 * n, "device": "cpu"})
    records.append({"model": "bert", "seq_len": 4096, "ms_per_step": None, "peak_mem_bytes": None, "error": "OOM"})
    assert speed.exponent([r for r in records if r["model"] == "fnet"], "peak_mem_bytes") == pytest.approx(1.0)
    assert speed.exponent([r for r in records if r["model"] == "bert"], "ms_per_step") == pytest.approx(2.0)
    fits = {m: {"memory_exponent": speed.exponent([r for r in records if r["model"] == m], "peak_mem_bytes"),
                "time_exponent": speed.exponent([r for r in records if r["model"] == m], "ms_per_step")}
            for m in ("bert", "fnet")}
    result = {"config": {"task": "text", "batch_size": 8, "time_budget": 60.0, "max_memory_gb": 4.0},
              "results": records, "fits": fits, "notes": ["performer: skipped"]}
    text = speed.format_markdown(result)
    assert "| fnet steps/s | 3.91 (1.0x) | 1.95 (2.0x) | 0.977 (4.1x) | - |" in text
    assert "| bert steps/s | 3.81 | 0.954 | 0.238 | OOM |" in text
    assert "fnet: memory ~ L^1.00" in text and "Note: performer: skipped" in text
    speed.plot(result, tmp_path / "speed.png")
    assert (tmp_path / "speed.png").read_bytes()[:4] == b"\x89PNG"


def test_root_op_baseline_predicts_the_commonest_label_per_outermost_operator():
    import numpy as np

    from tokenmix.lra.run import root_op_baseline
    from tokenmix.lra.splits import Split

    ids = np.array([[1, 3, 9], [1, 3, 9], [1, 4, 9], [1, 4, 9], [1, 4, 9]], dtype=np.uint8)  # CLS, operator, digit
    train = Split(ids, np.array([9, 9, 0, 0, 1]))
    test = Split(ids[[0, 2, 4]], np.array([9, 1, 0]))
    assert root_op_baseline(train, test, "cls") == pytest.approx(2 / 3)
    no_cls = Split(ids[:, 1:], train.labels)  # mean pooling: no CLS token, the operator comes first
    assert root_op_baseline(no_cls, Split(ids[[0, 2], 1:], np.array([9, 0])), "mean") == 1.0


def test_max_len_trains_on_the_head_of_each_sequence_and_eval_reads_the_same(tmp_path, capsys):
    out, cache = tmp_path / "run", str(tmp_path / "cache")
    data = ["--data-dir", str(FIXTURES / "listops"), "--cache-dir", cache]
    assert main(["lra", "run", "listops", *data, "--preset", "tiny", "--batch-size", "2", "--max-steps", "2",
                 "--max-len", "4", "--out", str(out)]) == 0
    assert "truncated to 4 tokens" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model_config"]["max_position_embeddings"] == 5  # 4 tokens + CLS
    # "[MAX 0 1 2 ]" (5 tokens) is cut, "[SM 1 2 ]" (4) is not.
    assert summary["data"]["test"]["truncated"] == 1 and summary["data"]["test"]["width"] == 5
    result = tmp_path / "eval.json"
    assert main(["lra", "eval", "listops", "--checkpoint", str(out), *data, "--json", str(result)]) == 0
    assert json.loads(result.read_text())["accuracy"] == pytest.approx(summary["test_accuracy"])
    # Asking the model to read more than it was built for fails with the model's own message.
    assert main(["lra", "eval", "listops", "--checkpoint", str(out), *data, "--max-len", "8"]) == 1
    assert "exceeds max_position_embeddings=5" in capsys.readouterr().err


def test_split_head_keeps_the_first_positions_and_counts_cut_examples():
    import numpy as np

    from tokenmix.lra.splits import Split

    split = Split(np.array([[1, 5, 6, 7], [1, 5, 0, 0]], dtype=np.uint8), np.array([0, 1]), stats={"truncated": 0})
    head = split.head(2)
    assert head.input_ids.tolist() == [[1, 5], [1, 5]] and head.stats["truncated"] == 1
    assert split.head(4) is split


@pytest.mark.parametrize("args", [["run", "listops"], ["eval", "listops", "--checkpoint", "some-run"]])
def test_negative_data_flags_are_one_line_errors(args, capsys):
    def exit_code(argv: list[str]) -> int | str | None:  # the parser exits (2), a config check returns 1
        try:
            return main(argv)
        except SystemExit as stop:
            return stop.code

    assert exit_code(["lra", *args, "--max-len", "-1"]) not in (0, None)
    err = capsys.readouterr().err
    assert "--max-len" in err and "must be >= 0" in err and len(err.strip().splitlines()) == 1
    assert exit_code(["lra", *args, "--workers", "-2"]) not in (0, None)
    err = capsys.readouterr().err
    assert "--workers" in err and "must be >= 0" in err
