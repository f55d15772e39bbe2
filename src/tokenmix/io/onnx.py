"""ONNX export of an encoder or a classification/regression model, checked with onnxruntime.

What the graph can and cannot do, and why:

* **Fourier mixing** is exported in its DFT-matmul form (``fourier_impl="matmul"``): ONNX has no
  complex tensors, so ``torch.fft`` does not export. The cosine/sine matrices are constants built
  for the traced length L, so the graph of a model with a ``length_dependent`` mixer (fnet, hybrid,
  linear, random, Sparse Mixers) takes sequences of exactly L tokens: a DFT over another length is
  another function, and the learned/random mixing matrices are sliced to L. Pad inputs to L, as the
  official pipelines do. Models without such a mixer (bert, ff_only) get a dynamic length axis as well.
  A classifier fine-tuned with length buckets (Fourier/Hartley) is reproduced exactly for inputs whose
  bucket is L: export one graph per bucket length served (a note says so).
* The **batch axis is dynamic** for every model. Mixture-of-experts layers route tokens in groups
  whose expert capacity depends on the group size, so the exported graph routes each example on
  its own (``max_group_size`` = one example); PyTorch's default routes a whole batch together.
* Mixers that are not ``onnx_exportable`` (learned circulant/Toeplitz mixing, FFT products) are refused.

The file is written only after onnxruntime reproduces PyTorch on random inputs of several batch
sizes (max abs difference <= ``atol``); export and check go to a temporary file that is renamed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tokenmix.io.checkpoint import find_model_dir, read_config
from tokenmix.io.configs import OnnxExportConfig
from tokenmix.io.files import atomic_write, claim_output, read_json
from tokenmix.models.config import ModelConfig
from tokenmix.models.encoder import TokenMixPreTrainedModel
from tokenmix.models.factory import load_pretrained
from tokenmix.models.mixing.registry import get_mixer, list_mixers
from tokenmix.models.moe import num_groups

INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")
OUTPUT_NAMES = {"none": ("last_hidden_state", "pooler_output"), "classification": ("logits",), "regression": ("logits",)}


def require_onnx() -> None:
    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(f"ONNX export needs {', '.join(missing)}: pip install 'tokenmix[onnx]'")


class OnnxWrapper(nn.Module):
    """Plain tensors in and out (an ONNX graph has no output dataclasses): the head's outputs."""

    def __init__(self, model: TokenMixPreTrainedModel) -> None:
        super().__init__()
        self.model = model
        self.output_names = OUTPUT_NAMES[model.config.head]

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(input_ids, token_type_ids, attention_mask)
        return tuple(getattr(out, name) for name in self.output_names)


def load_for_export(model_dir: Path, config: OnnxExportConfig) -> tuple[OnnxWrapper, int, bool, list[str]]:
    """The model in eval mode with its export settings; also the traced length, whether the length
    axis is dynamic, and notes for the user."""
    saved = read_config(model_dir)
    refused = sorted({name for name in saved.layer_mixing() if not get_mixer(name).onnx_exportable})
    if refused:
        exportable = [name for name in list_mixers() if get_mixer(name).onnx_exportable]
        raise ValueError(f"{model_dir} uses {', '.join(refused)} mixing, which ONNX cannot express; only "
                         f"{', '.join(exportable)} mixing export")
    seq_len = config.seq_len or saved.max_position_embeddings
    if seq_len > saved.max_position_embeddings:
        raise ValueError(f"seq_len={seq_len} exceeds the model's max_position_embeddings={saved.max_position_embeddings}; "
                         f"export with --seq-len {saved.max_position_embeddings} or less")
    notes = []
    head = saved.head if saved.head in OUTPUT_NAMES and not config.encoder_only else "none"
    if head != saved.head:
        notes.append(f"the folder holds a {saved.head} model: its encoder is exported, the {saved.head} head is left out")
    overrides: dict[str, Any] = {"head": head, "fourier_impl": "matmul"}
    if saved.num_moe_layers:
        overrides["max_group_size"] = group = seq_len // num_groups(seq_len, saved.max_group_size)
        notes.append(f"MoE layers route each example on its own in the graph (groups of {group} tokens), so that "
                     f"any batch size works; PyTorch with max_group_size={saved.max_group_size} routes the tokens "
                     f"of a batch together, so its outputs can differ slightly")
    # The variant's own mixing decides whether the length axis can stay dynamic (no [L, L] map), so a
    # hybrid keeps a fixed length even when attention replaces all of its layers.
    length_dependent = get_mixer(saved.mixing).length_dependent
    dynamic_length = not saved.num_moe_layers and not length_dependent
    if not dynamic_length:
        why = f"{saved.mixing} mixing" if length_dependent else "MoE expert capacity"
        notes.append(f"{why} is length-specific: the graph takes sequences of exactly {seq_len} tokens "
                     f"(pad shorter inputs; re-export with --seq-len N for another length)")
    task = model_dir / "task.json"  # written by `tokenmix finetune`
    if task.is_file() and read_json(task).get("length_buckets") is not None:
        notes.append(f"this classifier was fine-tuned with length buckets: the graph matches `tokenmix predict` for "
                     f"inputs whose bucket is {seq_len} tokens; export one file per bucket length you serve (inputs "
                     f"padded further than their bucket are valid but get slightly different outputs)")
    model = load_pretrained(model_dir, **overrides).eval()
    return OnnxWrapper(model).eval(), seq_len, dynamic_length, notes


def random_inputs(config: ModelConfig, batch: int, seq_len: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Random ids and token types; the last example is padded from half its length on (when it has
    more than one token), so padding-aware layers are exercised too."""
    input_ids = torch.randint(0, config.vocab_size, (batch, seq_len), generator=generator)
    token_type_ids = torch.randint(0, config.type_vocab_size, (batch, seq_len), generator=generator)
    attention_mask = torch.ones(batch, seq_len, dtype=torch.long)
    attention_mask[-1, max(1, seq_len // 2):] = 0
    return input_ids, token_type_ids, attention_mask


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter warns about things irrelevant here (torchvision ops, deprecations, axis renames)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def fold_constants(program: torch.onnx.ONNXProgram, seq_len: int, hidden_size: int) -> None:
    """Precompute what the graph would recompute on every run. Traced, the DFT matrices are
    built from ``arange`` (Mod, Cast, Cos, Sin per layer); folded, they become constants, and the
    identical copies of the layers are merged into one (a 12-layer FNet keeps one [2, L, L] matrix,
    not twelve), which keeps long-length graphs under ONNX's 2 GB file limit."""
    # Optional dependencies (tokenmix[onnx]), checked by require_onnx: imported only when exporting.
    import onnxscript.optimizer  # noqa: PLC0415
    from onnx_ir.passes.common import DeduplicateInitializersPass  # noqa: PLC0415

    limit = 2 * max(seq_len, hidden_size) ** 2  # elements of the largest DFT matrix
    onnxscript.optimizer.optimize(program.model, input_size_limit=limit, output_size_limit=limit)
    DeduplicateInitializersPass(size_limit=limit)(program.model)


def max_difference(path: str, wrapper: OnnxWrapper, cases: list[tuple[torch.Tensor, ...]]) -> float:
    """Largest absolute difference between onnxruntime and PyTorch over every output of every case."""
    import onnxruntime  # noqa: PLC0415  (optional dependency tokenmix[onnx], checked by require_onnx)

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    worst = 0.0
    for inputs in cases:
        with torch.inference_mode():
            expected = wrapper(*inputs)
        got = session.run(None, {name: t.numpy() for name, t in zip(INPUT_NAMES, inputs) if name in names})
        worst = max(worst, *(float((torch.from_numpy(g) - e).abs().max()) for g, e in zip(got, expected)))
    return worst


def export_onnx(config: OnnxExportConfig) -> dict[str, Any]:
    """Export, check (unless ``config.check`` is off), write ``config.out`` atomically; return what
    was done: path, model, head, input shapes, outputs, notes and the max abs difference."""
    require_onnx()
    model_dir = find_model_dir(config.model_dir)
    out = claim_output(config.out, config.overwrite, flag="OUT", directory=False)
    wrapper, seq_len, dynamic_length, notes = load_for_export(model_dir, config)
    model_config = wrapper.model.config
    batch = torch.export.Dim("batch", min=1)
    axes: dict[int, Any] = {0: batch}
    if dynamic_length:
        axes[1] = torch.export.Dim("seq_len", min=1, max=model_config.max_position_embeddings)
    generator = torch.Generator().manual_seed(config.seed)
    example = random_inputs(model_config, config.batch_size, seq_len, generator)
    batch_sizes = sorted({config.batch_size, *config.check_batch_sizes})
    seq_lens = sorted({seq_len, max(1, seq_len // 2)} if dynamic_length else {seq_len})
    cases = [random_inputs(model_config, b, n, generator) for b in batch_sizes for n in seq_lens]
    difference: list[float] = []

    def write(tmp: str) -> None:
        with _quiet_exporter():
            program = torch.onnx.export(wrapper, example, dynamo=True, opset_version=config.opset, verbose=False,
                                        input_names=list(INPUT_NAMES), output_names=list(wrapper.output_names),
                                        dynamic_shapes={name: dict(axes) for name in INPUT_NAMES})
            if program is None:  # only the legacy exporter (dynamo=False) returns nothing
                raise RuntimeError("torch.onnx.export returned no program")
            fold_constants(program, seq_len, model_config.hidden_size)
            program.save(tmp, external_data=False)
        if config.check:
            difference.append(max_difference(tmp, wrapper, cases))
            if not difference[0] <= config.atol:
                raise ValueError(f"the ONNX graph differs from PyTorch by up to {difference[0]:.3g} (> atol "
                                 f"{config.atol:g}); {out} was not written (--no-check writes it unchecked)")

    atomic_write(out, write)
    shape = ["batch", "seq_len" if dynamic_length else seq_len]
    return {
        "path": str(out), "model": model_config.variant, "head": model_config.head,
        "inputs": {name: shape for name in INPUT_NAMES}, "outputs": list(wrapper.output_names), "notes": notes,
        "max_abs_diff": difference[0] if difference else None,
        "checked_batch_sizes": batch_sizes if config.check else [], "checked_seq_lens": seq_lens if config.check else [],
    }
