"""The MoE layer alone against a dense feed-forward of the same per-token compute.

Experts-choose with capacity factor CF gives every token CF expert visits on average, tokens-choose
top-k at most k, so the dense reference has width ``visits * expert_intermediate_size``. The MoE time
is split into the experts' own batched matmuls (timed on an already dispatched buffer of the same
shape) and the rest, routing + dispatch (router, top-k, gather, scatter, statistics).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tokenmix.io.files import write_json
from tokenmix.reporting.tables import render_table


@dataclass
class MoEBenchConfig:
    model: str = field(default="sparse_mixer", metadata={"help": "registered model whose MoE layer is measured"})
    preset: str = field(default="base", metadata={"help": "size preset"})
    router: str | None = field(default=None, metadata={"help": "override the router: experts_choose or tokens_choose"})
    batch_size: int = field(default=4, metadata={"help": "examples per step"})
    seq_len: int = field(default=512, metadata={"help": "tokens per example"})
    mode: tuple[str, ...] = field(default=("train", "inference"), metadata={"help": "train (forward+backward) and/or inference"})
    warmup: int = field(default=2, metadata={"help": "untimed steps before measuring"})
    repeats: int = field(default=10, metadata={"help": "timed steps (the median is reported)"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    json: str | None = field(default=None, metadata={"help": "write the records to this JSON file"})

    def __post_init__(self) -> None:
        bad = [m for m in self.mode if m not in ("train", "inference")]
        if bad:
            raise ValueError(f"unknown mode {', '.join(bad)}; choose from train, inference")


def run_moe_benchmark(config: MoEBenchConfig) -> list[dict[str, Any]]:
    import torch

    from tokenmix.bench.measure import device_name, median, resolve_device, time_steps
    from tokenmix.models.layers import FeedForward
    from tokenmix.models.moe import MoEFeedForward, expert_capacity, num_groups
    from tokenmix.models.registry import make_config

    device = resolve_device(config.device)
    overrides = {"router": config.router} if config.router else {}
    model_config = make_config(config.model, config.preset, **overrides)
    if model_config.num_moe_layers == 0:
        raise ValueError(f"{config.model!r} has no MoE layers; use sparse_mixer or set num_moe_layers")
    torch.manual_seed(config.seed)
    records = []
    for mode in config.mode:
        train = mode == "train"
        factor = model_config.train_capacity_factor if train else model_config.eval_capacity_factor
        visits = factor if model_config.router == "experts_choose" else model_config.num_selected_experts
        dense_width = max(1, round(visits * model_config.expert_intermediate_size))
        moe = MoEFeedForward(model_config, 0).to(device).train(train)
        dense = FeedForward(model_config.replace(intermediate_size=dense_width)).to(device).train(train)
        d, e = model_config.hidden_size, model_config.num_experts
        tokens = config.batch_size * config.seq_len
        groups = num_groups(tokens, model_config.max_group_size)
        capacity = expert_capacity(tokens // groups, e, factor, model_config.min_expert_capacity)
        x = torch.randn(config.batch_size, config.seq_len, d, device=device, requires_grad=train)
        buffer = torch.randn(e, groups * capacity, d, device=device, requires_grad=train)

        def timed(fn) -> float:
            def step() -> None:
                with torch.set_grad_enabled(train):
                    out = fn()
                    if train:
                        out.sum().backward()
                for module in (moe, dense):
                    module.zero_grad(set_to_none=True)
                x.grad = buffer.grad = None

            return median(time_steps(step, device, config.warmup, config.repeats))

        dense_ms = timed(lambda: dense(x))
        moe_ms = timed(lambda: moe(x, None)[0])
        experts_ms = timed(lambda: moe.experts(buffer))
        records.append({
            "model": config.model, "preset": config.preset, "router": model_config.router, "mode": mode,
            "batch_size": config.batch_size, "seq_len": config.seq_len, "experts": e, "capacity": capacity,
            "groups": groups, "dense_width": dense_width, "dense_ms": round(dense_ms, 3), "moe_ms": round(moe_ms, 3),
            "experts_ms": round(experts_ms, 3), "routing_dispatch_ms": round(moe_ms - experts_ms, 3),
            "moe_overhead": round(moe_ms / dense_ms - 1, 4),
            "routing_dispatch_overhead": round((moe_ms - experts_ms) / dense_ms, 4),
            "device": device_name(device),
        })
    if config.json:
        write_json(config.json, {"config": asdict(config), "results": records})
    return records


def format_moe_table(records: list[dict[str, Any]]) -> str:
    rows = [[r["mode"], r["router"], f"{r['experts']}x{r['capacity']}", r["dense_width"], f"{r['dense_ms']:.1f}",
             f"{r['moe_ms']:.1f}", f"{r['experts_ms']:.1f}", f"{r['routing_dispatch_ms']:.1f}",
             f"{r['moe_overhead']:+.0%}", f"{r['routing_dispatch_overhead']:+.0%}"] for r in records]
    headers = ["mode", "router", "experts x capacity", "dense width", "dense ms", "MoE ms", "experts ms",
               "routing+dispatch ms", "MoE vs dense", "routing+dispatch vs dense"]
    device = records[0]["device"] if records else "?"
    return f"device: {device}\n" + render_table(headers, rows)
