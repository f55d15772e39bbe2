"""Benchmarks: ``speed`` (every model side by side) and ``moe`` (the MoE layer against a dense
feed-forward of the same per-token compute, with a breakdown of where the time goes)."""
