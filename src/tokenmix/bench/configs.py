"""Settings of ``tokenmix bench speed``, ``bench scaling`` and ``bench moe``: torch-free dataclasses,
one command-line flag per field, so the CLI builds its parser without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

from tokenmix.models.config import FOURIER_IMPLS
from tokenmix.models.registry import make_config
from tokenmix.options import OVERWRITE_HELP, check_ranges, option, require_values
from tokenmix.precisions import BENCH_PRECISIONS, PRECISION_HELP, check_precision

# What one measured step is, and the model head it needs (see :mod:`tokenmix.bench.speed`).
MODES = {"train": "classification", "pretrain": "pretraining", "inference": "none"}
# Hugging Face peer name -> (tokenmix variant whose size it copies, transformers class prefix)
PEERS = {"hf_fnet": ("fnet", "FNet"), "hf_bert": ("bert", "Bert")}
COMPARE = {"hf": tuple(PEERS)}  # --compare value -> the peers it adds


@dataclass
class SpeedBenchConfig:
    models: tuple[str, ...] = option(("fnet", "linear", "random", "ff_only", "hybrid", "bert"), "registered model names")
    preset: str = option("mini", "size preset")
    seq_lens: tuple[int, ...] = option((128, 512, 2048), "sequence lengths")
    batch_size: int = option(8, "examples per step")
    mode: tuple[str, ...] = option(("train",), "train, pretrain and/or inference")
    compare: tuple[str, ...] = option((), "add peers of the same size: hf (transformers FNet and BERT with SDPA)")
    warmup: int = option(2, "untimed steps before measuring")
    repeats: int = option(5, "timed steps (the median is reported)")
    rounds: int = option(1, "measure every configuration this many times, interleaved, and pool the timings")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    threads: int = option(0, "CPU threads for torch (0 = torch's default); 1 gives stable timings on a shared machine")
    precision: tuple[str, ...] = option(("auto",), "auto, fp32, bf16 and/or fp16 (CUDA, with a gradient scaler); "
                                                   "several are measured side by side, e.g. fp32,bf16")
    tf32: bool = option(True, "allow TF32 tensor cores for float32 matmuls (CUDA, Ampere and newer)")
    compile: bool = option(False, "torch.compile every model (Fourier mixing then uses DFT matmuls)")
    fourier_impl: str = option("auto", "Fourier transform: auto (measured), fft or matmul")
    isolate: bool = option(True, "fresh process per configuration on CPU (needed for peak memory)")
    memory_limit_gb: float = option(0.0, "CPU: cap each configuration's process at this many GB (0 = no cap); larger "
                                         "ones are reported as out of memory")
    time_budget_s: float = option(0.0, "CPU: stop a configuration's process after this many seconds (0 = none)")
    baseline: str = option("bert", "model the speed-up column is relative to")
    seed: int = option(0, "random seed for weights and inputs")
    json: str | None = option(None, "write the records to this JSON file", output="file")
    markdown: str | None = option(None, "write the tables as markdown to this file", output="file")
    overwrite: bool = option(False, OVERWRITE_HELP)

    def __post_init__(self) -> None:
        check_ranges(self)
        require_values(self, "models", "seq_lens", "mode", "precision")
        if self.fourier_impl not in FOURIER_IMPLS:
            raise ValueError(f"--fourier-impl {self.fourier_impl!r} is not valid; choose one of {', '.join(FOURIER_IMPLS)}")
        for name in self.models:  # an unknown model, preset or --fourier-impl now, not at its first measurement
            make_config(name, self.preset, fourier_impl=self.fourier_impl)
        if self.baseline != "bert" and self.baseline not in self.subjects:  # "bert": the default, not chosen
            raise ValueError(f"--baseline {self.baseline} is not measured: add it to --models, or choose one of "
                             f"{', '.join(self.subjects)}")
        bad = [m for m in self.mode if m not in MODES]
        if bad:
            raise ValueError(f"unknown mode {', '.join(bad)}; choose from {', '.join(MODES)}")
        unknown = [c for c in self.compare if c not in COMPARE]
        if unknown:
            raise ValueError(f"unknown --compare {', '.join(unknown)}; choose from {', '.join(COMPARE)}")
        for precision in self.precision:
            check_precision(precision, BENCH_PRECISIONS)

    @property
    def subjects(self) -> tuple[str, ...]:
        """Our models, then the peers --compare adds."""
        return self.models + tuple(p for c in self.compare for p in COMPARE[c] if p not in self.models)


@dataclass
class ScalingBenchConfig:
    models: tuple[str, ...] = option(("fnet", "bert"), "registered model names")
    preset: str = option("mini", "size preset")
    seq_lens: tuple[int, ...] = option((128, 256, 512, 1024, 2048, 4096, 8192), "sequence lengths, ascending")
    batch_sizes: tuple[int, ...] = option((8,), "batch sizes")
    mode: str = option("train", "what a step is: train, pretrain or inference")
    warmup: int = option(1, "untimed steps before measuring")
    repeats: int = option(3, "timed steps (the median is reported)")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    threads: int = option(0, "CPU threads for torch (0 = torch's default); 1 gives stable timings on a shared machine")
    precision: str = option("auto", PRECISION_HELP + "; fp16 on CUDA")
    compile: bool = option(False, "torch.compile every model")
    fourier_impl: str = option("auto", "Fourier transform: auto (measured), fft or matmul")
    time_budget_s: float = option(300.0, "seconds allowed per configuration (CPU: enforced; all devices: longer "
                                         "lengths predicted to exceed it are skipped)")
    memory_limit_gb: float = option(8.0, "CPU: address-space cap per configuration's process in GB (0 = none)")
    seed: int = option(0, "random seed for weights and inputs")
    out: str = option("runs/bench-scaling", "folder for scaling.json, scaling.md, scaling.png and scaling.svg",
                      output="folder")
    overwrite: bool = option(False, OVERWRITE_HELP)

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose from {', '.join(MODES)}")
        if list(self.seq_lens) != sorted(set(self.seq_lens)):
            raise ValueError(f"seq_lens must be distinct and ascending, got {','.join(map(str, self.seq_lens))}")
        require_values(self, "batch_sizes")
        if self.time_budget_s == 0:  # "no limit" in bench speed; here it decides which lengths to skip
            raise ValueError("--time-budget-s must be > 0 here, got 0")
        self.speed_config(self.batch_sizes[0])  # validates models, lengths, precision, repeats

    def speed_config(self, batch_size: int) -> SpeedBenchConfig:
        return SpeedBenchConfig(models=self.models, preset=self.preset, seq_lens=self.seq_lens, batch_size=batch_size,
                                mode=(self.mode,), warmup=self.warmup, repeats=self.repeats, device=self.device, threads=self.threads,
                                precision=(self.precision,), compile=self.compile, fourier_impl=self.fourier_impl,
                                memory_limit_gb=self.memory_limit_gb, time_budget_s=self.time_budget_s, seed=self.seed)


@dataclass
class MoEBenchConfig:
    model: str = option("sparse_mixer", "registered model whose MoE layer is measured")
    preset: str = option("base", "size preset")
    router: str | None = option(None, "override the router: experts_choose or tokens_choose")
    batch_size: int = option(4, "examples per step")
    seq_len: int = option(512, "tokens per example")
    mode: tuple[str, ...] = option(("train", "inference"), "train (forward+backward) and/or inference")
    warmup: int = option(2, "untimed steps before measuring")
    repeats: int = option(10, "timed steps (the median is reported)")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    precision: str = option("auto", PRECISION_HELP + "; fp16 on CUDA")
    seed: int = option(0, "random seed")
    json: str | None = option(None, "write the records to this JSON file", output="file")
    overwrite: bool = option(False, OVERWRITE_HELP)

    def __post_init__(self) -> None:
        check_ranges(self)
        check_precision(self.precision, BENCH_PRECISIONS)
        require_values(self, "mode")
        bad = [m for m in self.mode if m not in ("train", "inference")]
        if bad:
            raise ValueError(f"unknown mode {', '.join(bad)}; choose from train, inference")
