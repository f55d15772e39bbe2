"""torch.distributed set-up for torchrun: DDP with gloo on CPU and NCCL on GPU, rank-0 helpers.

Nothing here is home-made distribution: ``torchrun`` starts the processes and sets RANK /
WORLD_SIZE / LOCAL_RANK; we only initialise the default process group and wrap the model.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.nn.parallel import DistributedDataParallel

from tokenmix.models.encoder import TokenMixPreTrainedModel


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

    def sum_named(self, values: Mapping[str, float | torch.Tensor]) -> dict[str, float]:
        """Each named value summed over the ranks, all in one float64 all-reduce (every rank must pass
        the same names in the same order)."""
        if not self.enabled or not values:
            return {name: float(value) for name, value in values.items()}
        stacked = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=self.device).reshape(())
                               for v in values.values()])
        return dict(zip(values, self.all_reduce_sum(stacked).tolist()))

    def decided_by_main(self, decide: Callable[[], object]) -> None:
        """Run ``decide`` (a check of shared files, such as the run folder) on rank 0 alone and raise its error,
        if any, on every rank: one decision, so that no rank goes on while another refuses, and every rank
        reports the same line."""
        error: list[Exception | None] = [None]
        if self.is_main:
            try:
                decide()
            except Exception as err:  # handed to every rank, then raised
                error[0] = err
        if self.enabled:
            dist.broadcast_object_list(error, src=0)
        if error[0] is not None:
            raise error[0]

    @classmethod
    def single(cls, device: torch.device) -> DistributedContext:
        """One process, no process group: every collective is the identity."""
        return cls(0, 1, device)


def init_distributed(device: torch.device) -> DistributedContext:
    """Join the process group that torchrun describes in the environment (if any)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistributedContext.single(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(dist.get_rank(), dist.get_world_size(), device)


def wrap_model(model: TokenMixPreTrainedModel, context: DistributedContext, fsdp: bool) -> torch.nn.Module:
    """DDP (default) or FSDP2 sharding of every encoder block and then the whole model (in place)."""
    if not context.enabled:
        return model
    if fsdp:
        for block in model.encoder.layers:
            fully_shard(block)
        fully_shard(model)
        return model
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def shutdown(context: DistributedContext) -> None:
    """Destroy the process group last: after the DDP/FSDP wrappers that hold it are collected, so that
    its worker threads are joined here, in this thread, and not during interpreter exit, where gloo's
    threads can end the process with ``terminate called without an active exception`` (SIGABRT)."""
    if context.enabled and dist.is_initialized():
        gc.collect()  # wrappers caught in reference cycles (closures, hooks) release the group now
        dist.destroy_process_group()


def gradient_sync(model: torch.nn.Module, enabled: bool) -> AbstractContextManager[None]:
    """Context that skips the gradient all-reduce on accumulation micro-steps (DDP ``no_sync``,
    FSDP2 ``set_requires_gradient_sync``); a no-op for an unwrapped model."""
    if enabled:
        return contextlib.nullcontext()
    if isinstance(model, DistributedDataParallel):
        return model.no_sync()
    if isinstance(model, FSDPModule):
        return _fsdp_no_sync(model)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _fsdp_no_sync(model: FSDPModule) -> Iterator[None]:
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)
