"""``tokenmix report``: summaries of every kind are found and tabulated with the right numbers, the
Pareto plots are written, unrelated files are skipped, bad input gets a clear error."""

import json
import shutil
from pathlib import Path

import pytest

from tokenmix.cli.main import main
from tokenmix.reporting.configs import ReportConfig
from tokenmix.reporting.pareto import Point, pareto_front
from tokenmix.reporting.report import bench_time, build_report
from tokenmix.reporting.summaries import classify, collect
from tokenmix.reporting.tables import render_table

FIXTURES = Path(__file__).parent / "fixtures" / "report"


def test_render_table_as_text_or_markdown():
    rows = [["fnet", "1.5", None], ["bert", "12.25", "x"]]
    assert render_table(["model", "ms", "note"], rows) == (
        "model     ms  note\n-----  -----  ----\nfnet     1.5\nbert   12.25  x")
    assert render_table(["model", "ms", "note"], rows, markdown=True) == (
        "| model | ms | note |\n|---|---:|---|\n| fnet | 1.5 |  |\n| bert | 12.25 | x |")


def table_rows(markdown: str, heading: str) -> list[list[str]]:
    """The cells of the first table after ``heading``, without its header and alignment rows."""
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows: list[list[str]] = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    assert rows, f"no table under {heading}"
    return rows[2:]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    result = build_report(ReportConfig(str(FIXTURES), str(out)))
    return out, result, (out / "report.md").read_text()


def test_summaries_are_found_and_classified():
    found = collect(FIXTURES)
    assert {kind: len(found.of(kind)) for kind in ("pretraining", "glue", "lra", "speed")} == \
        {"pretraining": 2, "glue": 2, "lra": 4, "speed": 1}
    assert found.skipped == 3  # a model config, a list of numbers, a per-task fine-tuning file
    assert found.unreadable == ["other/broken.json"]


def test_classify_by_kind_key_and_by_characteristic_keys():
    assert classify({"model": "fnet", "heldout": {}, "steps_per_s": 1.0}) == "pretraining"
    assert classify({"kind": "glue", "model": "fnet"}) == "glue"
    assert classify({"model": "fnet", "tasks": {}, "average": 50.0}) == "glue"
    assert classify({"model": "fnet", "task": "text", "test_accuracy": 0.6}) == "lra"
    assert classify({"results": [{"model": "fnet", "ms_per_step": 3.0}]}) == "speed"
    assert classify([{"model": "fnet", "ms_per_step": 3.0}]) == "speed"
    for other in ({"kind": "finetune", "model": "fnet"}, {"variant": "fnet"}, {"results": []}, [1, 2], "text", []):
        assert classify(other) is None


def test_pretraining_table_numbers(report):
    _, result, text = report
    rows = {row[0]: row for row in table_rows(text, "Pretraining (held-out metrics)")}
    # model, size, params, steps, ms/step (1000 / steps_per_s), tokens/s, MLM loss, MLM acc, NSP loss, NSP acc
    assert rows["fnet"][:10] == ["fnet", "mini", "10.7M", "1533", "800", "5120", "6.427", "0.178", "0.692", "0.530"]
    assert rows["bert"][:10] == ["bert", "mini", "11.7M", "1049", "1250", "3277", "7.342", "0.117", "0.683", "0.547"]
    assert rows["fnet"][10] == "128 × 32"
    assert result["counts"] == {"pretraining": 2, "glue": 2, "lra": 4, "speed": 1}


def test_glue_table_numbers_and_paper_rows(report):
    _, _, text = report
    section = text.split("## GLUE (dev)\n", 1)[1]
    assert "| model | size | init | params | MNLI-m | MNLI-mm | SST-2 | CoLA | avg | file |" in section
    rows = {row[0]: row for row in table_rows(text, "GLUE (dev)")}
    # fnet's size comes from the pretraining run its init checkpoint lies in
    assert rows["fnet"][1] == "mini" and rows["fnet"][4:9] == ["60.0", "61.0", "80.0", "10.0", "52.8"]
    assert rows["linear"][4:9] == ["-", "-", "70.0", "0.0", "35.0"]
    assert rows["paper: fnet"][4:9] == ["72", "73", "95", "69", "76.7"]
    # the floor glue.json measured, under the runs; no average, as MNLI has none here
    assert rows["input ignored (majority class)"][4:10] == ["-", "-", "50.9", "0.0", "-", "`glue/linear-mini/glue.json`"]
    assert "'input ignored': the score of always answering the majority class" in section


def test_lra_tables(report):
    _, _, text = report
    rows = {row[0]: row for row in table_rows(text, "Long Range Arena")}
    assert rows["fnet"] == ["fnet", "lra", "35.5", "62.0", "48.8"]  # fractions shown as percentages
    assert rows["bert"] == ["bert", "lra", "36.0", "64.0", "50.0"]
    assert "| bert | lra | text | 64.0 | yes | 0.5 | 3000 | `lra/bert-text/summary.json` |" in text
    assert "| fnet | lra | text | 62.0 |  | 2 | 900 |" in text


def test_speed_table_keeps_failed_configurations(report):
    _, _, text = report
    rows = table_rows(text, "Speed benchmarks")
    assert rows[0][:8] == ["fnet", "mini", "train", "128", "8", "127.0", "8063", "100"]
    assert rows[-1][:6] == ["bert", "mini", "train", "2048", "8", "out of memory"]


def test_pareto_points_and_plots(report):
    out, result, text = report
    glue = table_rows(text, "Speed-accuracy: GLUE dev average (%)")
    # linear: no pretraining run, so the benchmark's training step at the GLUE length (512) is used
    assert glue[0][:5] == ["linear", "mini", "35.0", "604.0", "yes"] and "bench `bench/speed.json`" in glue[0][5]
    # fnet: the pretraining run it was fine-tuned from, 1 / 1.25 steps/s
    assert glue[1][:5] == ["fnet", "mini", "52.8", "800.0", "yes"] and "pretrain/fnet-mini" in glue[1][5]
    mlm = table_rows(text, "Speed-accuracy: held-out MLM accuracy")
    assert [row[:5] for row in mlm] == [["fnet", "mini", "0.178", "800.0", "yes"], ["bert", "mini", "0.117", "1250.0", ""]]
    for stem in ("pareto_glue", "pareto_mlm"):
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        svg = (out / f"{stem}.svg").read_text()
        assert "<svg" in svg and "fnet mini" in svg and "Pareto front" in svg
        assert f"]({stem}.png)" in text
    assert sorted(Path(p).name for p in result["plots"]) == ["pareto_glue.png", "pareto_glue.svg", "pareto_mlm.png",
                                                             "pareto_mlm.svg"]
    assert "`other/broken.json` is not valid JSON" in text
    assert sorted(p.name for p in out.iterdir()) == ["pareto_glue.png", "pareto_glue.svg", "pareto_mlm.png",
                                                     "pareto_mlm.svg", "report.md"]  # no temporary files left


def test_pareto_front():
    points = [Point("a", "s", 10.0, 0.5, ""), Point("b", "s", 20.0, 0.4, ""), Point("c", "s", 30.0, 0.7, ""),
              Point("d", "s", 5.0, 0.1, ""), Point("e", "s", 30.0, 0.7, ""), Point("f", "s", 30.0, 0.6, "")]
    # b: slower and worse than a; e: the same as c (the first of equals stays); f: as slow as c, worse
    assert pareto_front(points) == [True, False, True, True, False, False]
    assert pareto_front([points[1]]) == [True]


def test_bench_time_prefers_pretraining_steps_then_the_closest_length():
    found = collect(FIXTURES)
    ms, source = bench_time("linear", "mini", 128, found.of("speed"))
    assert ms == 142.0 and "length 128" in source
    assert bench_time("linear", "base", 128, found.of("speed")) is None  # another size
    assert bench_time("hybrid", "mini", 128, found.of("speed")) is None


def test_only_pretraining_runs_give_the_mlm_plot(tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURES / "pretrain", runs)
    code = main(["report", str(runs), "--out", str(tmp_path / "out")])
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    assert (tmp_path / "out" / "pareto_mlm.svg").is_file() and not (tmp_path / "out" / "pareto_glue.png").exists()
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## GLUE" not in text and "## Pretraining" in text


def test_glue_without_any_time_is_noted_not_plotted(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    glue = json.loads((FIXTURES / "glue" / "linear-mini" / "glue.json").read_text())
    (runs / "glue.json").write_text(json.dumps(glue))
    result = build_report(ReportConfig(str(runs), str(tmp_path / "out")))
    assert result["plots"] == [] and "no time per step for linear mini" in result["notes"][0]
    assert "| linear | mini |" in (tmp_path / "out" / "report.md").read_text()


def test_bad_input_gets_clear_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text('{"variant": "fnet"}')
    (tmp_path / "afile").write_text("x")
    (tmp_path / "cut" / "run").mkdir(parents=True)
    (tmp_path / "cut" / "run" / "summary.json").write_text('{"model": "fnet", "heldout"')  # was "0 other JSON files"
    cases = [
        (["report", str(tmp_path / "cut")], "(0 other JSON files; not valid JSON: run/summary.json)"),
        (["report", str(tmp_path / "missing")], "no such folder"),
        (["report", str(tmp_path / "afile")], "is a file"),
        (["report", str(tmp_path / "empty")], "no run summaries"),
        (["report", str(tmp_path / "junk")], "1 other JSON files"),
        (["report", str(FIXTURES), "--out", str(tmp_path / "afile" / "out")], "cannot write"),
    ]
    for argv, message in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("tokenmix: error:") and message in err, (argv, err)
