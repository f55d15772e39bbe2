"""``tokenmix reproduce --scale mini --budget 2h --data ../shared/data --out results/mini``.

The FNet paper's main comparisons (and the Sparse Mixer one) on the user's own machine, in stages
whose outputs are their cache keys: corpus → tokenizer → pretraining data → pretraining of every
model (an equal share of the budget each) → GLUE fine-tuning → speed benchmark → ``REPORT.md``.
Rerunning the command skips finished stages and resumes the one in progress from its last checkpoint
(pretraining every ``save_every`` steps, fine-tuning at every evaluation), so a study can run in chunks:
``--max-time`` ends an invocation on time (the training stage in progress checkpoints first) and the
same command continues it. Scales (``scales.json``) are data: sizes, lengths, learning rates, tasks,
budget shares or fixed budgets per model, the pretraining recipe, fine-tuning seeds.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from tokenmix.bench.configs import SpeedBenchConfig
from tokenmix.bench.speed import run_speed_benchmark
from tokenmix.benchmarks.glue import get_glue_task
from tokenmix.io.files import atomic_write, ensure_writable, read_json, write_json
from tokenmix.reproduce.configs import SCALES, ReproduceConfig
from tokenmix.reproduce.writeup import write_report
from tokenmix.text.configs import DataPrepareConfig, TokenizerTrainConfig
from tokenmix.text.corpus import read_documents
from tokenmix.text.prepare import prepare_data
from tokenmix.text.tokenizer import train_tokenizer
from tokenmix.train.configs import GlueConfig, PretrainConfig
from tokenmix.train.pretrain import run_pretraining
from tokenmix.train.state import checkpoint_dirs
from tokenmix.train.suite import run_suite

CORPUS = Path("text") / "wikipedia_en" / "wiki_chunk.txt.gz"
MARKER = "reproduce.json"  # the study's configuration, start and end times, and each stage's time


def check_data(config: ReproduceConfig) -> None:
    root, scale = Path(config.data), SCALES[config.scale]
    if not root.is_dir():  # rather than a list of every file missing under it
        raise FileNotFoundError(f"--data {root} is not a folder; point it at a folder laid out like ../shared/data "
                                f"(see its README)")
    missing = [str(root / CORPUS)] if not (root / CORPUS).is_file() else []
    folders = [root / "glue" / get_glue_task(t).folder for t in scale["glue_tasks"]]
    missing += [str(folder) for folder in folders if not folder.is_dir()]
    if missing:
        raise FileNotFoundError(f"missing data for the study: {', '.join(missing)}; point --data at a folder laid out "
                                f"like ../shared/data (see its README)")


def _recorded_config(marker: Path) -> dict[str, Any] | None:
    """The configuration a study's record holds, or None for a damaged record (cut short, edited by hand)."""
    try:
        previous = read_json(marker)["config"]
    except (ValueError, TypeError, KeyError):  # ValueError: not JSON, or not UTF-8
        return None
    return previous if isinstance(previous, dict) else None


def claim_results_dir(config: ReproduceConfig) -> Path:
    """Refuse a folder holding a study of another configuration (or a damaged record of one), unless
    --overwrite, and a file or an unwritable folder, before the first stage."""
    out = ensure_writable(config.out, directory=True, flag="--out")
    record = {k: v for k, v in asdict(config).items() if k not in ("overwrite", "device", "out", "max_time")}
    record["models"] = list(record["models"])
    marker = out / MARKER
    if marker.is_file():
        previous = _recorded_config(marker)
        if previous is None and not config.overwrite:
            raise ValueError(f"{marker} is damaged (not the JSON record of a study); pass --overwrite to start the "
                             f"study over, or choose another --out")
        if previous is not None and previous != record and not config.overwrite:
            diff = ", ".join(f"{k}: {previous.get(k)!r} -> {v!r}" for k, v in record.items() if previous.get(k) != v)
            raise ValueError(f"{out} holds a study with another configuration ({diff}); pass --overwrite to delete "
                             f"it, or choose another --out")
        if previous != record:
            shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()) and not config.overwrite:
        raise ValueError(f"{out} is not empty and holds no study; choose another --out or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    if not marker.is_file():
        write_json(marker, {"config": record, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")})
    return out


class Stages:
    """Runs each stage unless its output exists; keeps the time spent for the budget and the log."""

    def __init__(self, out: Path, budget: float | None) -> None:
        self.out, self.budget, self.start = out, budget, time.perf_counter()
        self.log: list[dict[str, Any]] = []

    @property
    def remaining(self) -> float:
        """Seconds of ``--budget`` left (infinite where the scale fixes each stage's time itself)."""
        return math.inf if self.budget is None else self.budget - (time.perf_counter() - self.start)

    def run(self, name: str, output: Path, work: Callable[[], Any]) -> None:
        if output.exists():
            print(f"[reproduce] {name}: done before ({output.relative_to(self.out)}), skipped", file=sys.stderr)
            self.log.append({"stage": name, "status": "cached"})
            return
        left = "" if self.budget is None else f" ({self.remaining / 60:.1f} min of the budget left)"
        print(f"[reproduce] {name}{left} ...", file=sys.stderr)
        began, status = time.perf_counter(), "interrupted"
        try:
            work()
            status = "ran"
        finally:
            self._record(name, status, time.perf_counter() - began)

    def _record(self, name: str, status: str, seconds: float) -> None:
        """Write the stage's time to the marker at once: a study runs in chunks (``--max-time``), so a stage
        cut short keeps the seconds it spent and the invocation that continues it adds its own."""
        marker = read_json(self.out / MARKER)
        before: dict[str, Any] = next((e for e in marker.get("stages", []) if e["stage"] == name), {})
        if before.get("status") == "interrupted":
            seconds += before.get("seconds", 0.0)
        entry = {"stage": name, "status": status, "seconds": round(seconds, 1)}
        self.log.append(entry)
        marker["stages"] = [*(e for e in marker.get("stages", []) if e["stage"] != name), entry]
        write_json(self.out / MARKER, marker)


def write_corpus(source: Path, target: Path, megabytes: float) -> None:
    """The first ``megabytes`` of whole documents of the corpus (documents separated by blank lines)."""
    limit, size, chunks = megabytes * 2**20, 0, []
    for doc in read_documents(source):
        text = "\n".join(doc) + "\n\n"
        chunks.append(text)
        size += len(text.encode())
        if size >= limit:
            break
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda tmp: Path(tmp).write_text("".join(chunks), encoding="utf-8"))


class Deadline:
    """``--max-time`` of one invocation: at the deadline this process sends itself SIGTERM. Training
    answers it by checkpointing at the end of the step and raising KeyboardInterrupt; elsewhere (corpus,
    tokenizer, data: each writes its output atomically) the handler raises KeyboardInterrupt at once."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds, self.fired = seconds, False
        self._timer: threading.Timer | None = None
        self._previous: Any = None

    def _send(self) -> None:
        self.fired = True
        os.kill(os.getpid(), signal.SIGTERM)

    def _interrupt(self, signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt("--max-time reached")

    def __enter__(self) -> Deadline:
        self._previous = signal.signal(signal.SIGTERM, self._interrupt)
        if self.seconds is not None:
            self._timer = threading.Timer(self.seconds, self._send)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        signal.signal(signal.SIGTERM, self._previous)


def _pretrain(config: ReproduceConfig, model: str, data: Path, run_dir: Path, seconds: float) -> None:
    """Pretrain one model, or continue its run from the last checkpoint (the engine's clock and the
    time-budget schedule continue with it, so ``seconds`` is the run's budget across invocations)."""
    scale = SCALES[config.scale]
    resume = bool(checkpoint_dirs(run_dir))
    run_pretraining(PretrainConfig(
        model=model, preset=scale["preset"], data=str(data), out=str(run_dir), max_seq_len=scale["seq_len"],
        max_predictions_per_seq=scale["max_predictions"], batch_size=scale["batch_size"],
        learning_rate=scale["learning_rate"], warmup_steps=scale["warmup_steps"], max_time=seconds,
        eval_every=scale["eval_every"], eval_batches=scale["eval_batches"], save_every=scale.get("save_every", 10**9),
        keep_checkpoints=1, recipe=scale.get("recipe", "paper"), override=tuple(scale.get("overrides", ())),
        resume=resume, overwrite=not resume, seed=config.seed, device=config.device, precision=config.precision))


def _glue(config: ReproduceConfig, init: Path, tokenizer: Path, glue_dir: Path, seconds: float | None, seed: int) -> None:
    """One fine-tuning recipe for every task and model; ``--resume`` continues a task's run from its
    last evaluation's checkpoint and skips finished tasks."""
    scale = SCALES[config.scale]
    run_suite(GlueConfig(
        init=str(init), tokenizer=str(tokenizer), data_dir=str(Path(config.data) / "glue"),
        out=str(glue_dir), tasks=tuple(scale["glue_tasks"]), lr=(scale["glue_lr"],), epochs=scale["glue_epochs"],
        batch_size=scale["glue_batch_size"], max_seq_len=scale["glue_max_seq_len"],
        max_train_examples=scale["glue_max_train_examples"], train_from_dev=0.8, max_time=seconds,
        eval_every=scale.get("glue_eval_every", 0), resume=True, seed=seed, device=config.device, precision=config.precision), "glue")


def glue_seeds(config: ReproduceConfig) -> list[int]:
    """The fine-tuning seeds of the scale (``glue_seeds`` of them, from ``--seed`` on)."""
    return [config.seed + k for k in range(SCALES[config.scale].get("glue_seeds", 1))]


def run_reproduce(config: ReproduceConfig) -> Path:
    """Run (or continue) the study; at ``--max-time`` the stage in progress checkpoints, the report is
    written from what is finished, and rerunning the same command continues."""
    check_data(config)
    out = claim_results_dir(config)
    with Deadline(config.max_time) as deadline:
        try:
            stages = _run_stages(config, out)
        except KeyboardInterrupt:
            if not deadline.fired:
                raise
            print(f"[reproduce] --max-time {config.max_time:g} s reached: the stage in progress was checkpointed; "
                  f"rerun the same command to continue", file=sys.stderr)
            stages = None
    marker = read_json(out / MARKER)
    if stages is not None and ("finished" not in marker or any(e["status"] == "ran" for e in stages.log)):
        marker["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        write_json(out / MARKER, marker)
    return write_report(out, config, marker)


def _run_stages(config: ReproduceConfig, out: Path) -> Stages:
    scale = SCALES[config.scale]
    scale_fixes_time = "pretrain_seconds" in scale  # the budget scale: --budget does not apply
    work, stages = out / "work", Stages(out, None if scale_fixes_time else config.seconds)
    corpus, tok, data = work / "corpus.txt", work / "tokenizer", work / "data"
    stages.run("corpus", corpus, lambda: write_corpus(Path(config.data) / CORPUS, corpus, scale["corpus_mb"]))
    stages.run("tokenizer", tok / "tokenizer.json", lambda: train_tokenizer(TokenizerTrainConfig(
        input=(str(corpus),), out=str(tok), vocab_size=scale["vocab_size"])))
    stages.run("pretraining data", data / "meta.json", lambda: prepare_data(DataPrepareConfig(
        input=(str(corpus),), tokenizer=str(tok.resolve()), out=str(data), seed=config.seed)))
    shares, remaining, n = scale["shares"], stages.remaining, len(config.models)
    # a fixed budget per model (the budget scale) or a share of --budget
    pretrain_each = scale.get("pretrain_seconds") or max(10.0, remaining * shares["pretrain"] / n)
    glue_each = None if scale_fixes_time else max(5.0, remaining * shares["glue"] / (n * len(scale["glue_tasks"])))
    for model in config.models:
        run_dir = out / "pretrain" / model
        stages.run(f"pretrain {model}", run_dir / "summary.json",
                   partial(_pretrain, config, model, data, run_dir, pretrain_each))
    for model in config.models:
        for seed in glue_seeds(config):
            glue_dir = out / "glue" / model / f"seed_{seed}"
            stages.run(f"GLUE {model} seed {seed}", glue_dir / "glue.json",
                       partial(_glue, config, out / "pretrain" / model, tok, glue_dir, glue_each, seed))
    bench = out / "bench" / "speed.json"
    stages.run("speed benchmark", bench, lambda: run_speed_benchmark(SpeedBenchConfig(
        models=tuple(config.models), preset=scale["preset"], seq_lens=tuple(scale["bench_seq_lens"]),
        batch_size=scale["bench_batch_size"], mode=("pretrain", "inference"), repeats=scale["bench_repeats"],
        device=config.device, precision=(config.precision,), seed=config.seed, json=str(bench))))
    return stages
