"""The MoE layer alone against a dense feed-forward of the same per-token compute.

Experts-choose with capacity factor CF gives every token CF expert visits on average, tokens-choose
top-k at most k, so the dense reference has width ``visits * expert_intermediate_size``. The MoE time
is split into the experts' own batched matmuls (timed on an already dispatched buffer of the same
shape) and the rest, routing + dispatch (router, top-k, gather, scatter, statistics).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch

from tokenmix.bench.configs import MoEBenchConfig
from tokenmix.bench.measure import median, time_steps
from tokenmix.devices import autocast, device_name, precision_name, resolve_device, resolve_precision
from tokenmix.io.files import claim_outputs, write_json
from tokenmix.models.config import ModelConfig
from tokenmix.models.layers import FeedForward
from tokenmix.models.moe import MoEFeedForward, expert_capacity, num_groups
from tokenmix.models.registry import make_config
from tokenmix.reporting.tables import render_table


def run_moe_benchmark(config: MoEBenchConfig) -> list[dict[str, Any]]:
    claim_outputs(config)  # an existing output is refused unless config.overwrite, before any work
    device = resolve_device(config.device)
    overrides = {"router": config.router} if config.router else {}
    model_config = make_config(config.model, config.preset, **overrides)
    if model_config.num_moe_layers == 0:
        raise ValueError(f"{config.model!r} has no MoE layers; use sparse_mixer or set num_moe_layers")
    torch.manual_seed(config.seed)
    records = [_measure_mode(config, model_config, mode, device) for mode in config.mode]
    if config.json:
        write_json(config.json, {"config": asdict(config), "results": records})
    return records


def _measure_mode(config: MoEBenchConfig, model_config: ModelConfig, mode: str, device: torch.device) -> dict[str, Any]:
    """The dense feed-forward, the MoE layer and its experts alone, timed in ``mode``."""
    train = mode == "train"
    factor = model_config.train_capacity_factor if train else model_config.eval_capacity_factor
    visits = factor if model_config.router == "experts_choose" else model_config.num_selected_experts
    expert_width = model_config.expert_intermediate_size or model_config.intermediate_size
    dense_width = max(1, round(visits * expert_width))
    moe = MoEFeedForward(model_config, 0).to(device).train(train)
    dense = FeedForward(model_config.replace(intermediate_size=dense_width)).to(device).train(train)
    d, e = model_config.hidden_size, model_config.num_experts
    tokens = config.batch_size * config.seq_len
    groups = num_groups(tokens, model_config.max_group_size)
    capacity = expert_capacity(tokens // groups, e, factor, model_config.min_expert_capacity)
    x = torch.randn(config.batch_size, config.seq_len, d, device=device, requires_grad=train)
    buffer = torch.randn(e, groups * capacity, d, device=device, requires_grad=train)

    def timed(fn: Callable[[], torch.Tensor]) -> float:
        def step() -> None:
            with torch.set_grad_enabled(train), autocast(config.precision, device):
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
    return {
        "model": config.model, "preset": config.preset, "router": model_config.router, "mode": mode,
        "batch_size": config.batch_size, "seq_len": config.seq_len, "experts": e, "capacity": capacity,
        "groups": groups, "dense_width": dense_width, "dense_ms": round(dense_ms, 3), "moe_ms": round(moe_ms, 3),
        "experts_ms": round(experts_ms, 3), "routing_dispatch_ms": round(moe_ms - experts_ms, 3),
        "moe_overhead": round(moe_ms / dense_ms - 1, 4),
        "routing_dispatch_overhead": round((moe_ms - experts_ms) / dense_ms, 4),
        "device": device_name(device), "precision": precision_name(resolve_precision(config.precision, device)),
    }


def format_moe_table(records: list[dict[str, Any]]) -> str:
    rows = [[r["mode"], r["router"], f"{r['experts']}x{r['capacity']}", r["dense_width"], f"{r['dense_ms']:.1f}",
             f"{r['moe_ms']:.1f}", f"{r['experts_ms']:.1f}", f"{r['routing_dispatch_ms']:.1f}",
             f"{r['moe_overhead']:+.0%}", f"{r['routing_dispatch_overhead']:+.0%}"] for r in records]
    headers = ["mode", "router", "experts x capacity", "dense width", "dense ms", "MoE ms", "experts ms",
               "routing+dispatch ms", "MoE vs dense", "routing+dispatch vs dense"]
    device = records[0]["device"] if records else "?"
    return f"device: {device}\n" + render_table(headers, rows)
