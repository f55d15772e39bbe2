"""torch.distributed set-up for torchrun: DDP with gloo on CPU and NCCL on GPU, rank-0 helpers.

Nothing here is home-made distribution: ``torchrun`` starts the processes and sets RANK /
WORLD_SIZE / LOCAL_RANK; we only initialise the default process group and wrap the model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's decision (stop on time / signal) for every rank."""
        if not self.enabled:
            return flag
        value = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(value, src=0)
        return bool(value.item())


def init_distributed(device: torch.device) -> DistributedContext:
    """Join the process group that torchrun describes in the environment (if any)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistributedContext(0, 1, device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(dist.get_rank(), dist.get_world_size(), device)


def wrap_model(model: torch.nn.Module, context: DistributedContext, fsdp: bool) -> torch.nn.Module:
    """DDP (default) or FSDP2 sharding of every encoder block and then the whole model."""
    if not context.enabled:
        return model
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        for block in model.encoder.layers:
            fully_shard(block)
        return fully_shard(model)
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def shutdown(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


def gradient_sync(model: torch.nn.Module, enabled: bool):
    """Context that skips the gradient all-reduce on accumulation micro-steps (DDP ``no_sync``,
    FSDP2 ``set_requires_gradient_sync``); a no-op for an unwrapped model."""
    import contextlib

    if enabled:
        return contextlib.nullcontext()
    if hasattr(model, "no_sync"):
        return model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):
        @contextlib.contextmanager
        def paused():
            model.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                model.set_requires_gradient_sync(True)

        return paused()
    return contextlib.nullcontext()
