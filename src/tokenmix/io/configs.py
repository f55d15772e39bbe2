"""Configs of ``tokenmix export onnx`` and ``tokenmix convert`` (torch-free, for the command line; the
work is in :mod:`tokenmix.io.onnx`, :mod:`tokenmix.io.huggingface` and :mod:`tokenmix.io.official`)."""

from __future__ import annotations

from dataclasses import dataclass

from tokenmix.options import check_ranges, option


@dataclass
class OnnxExportConfig:
    model_dir: str = option("", "model folder (config.json + model.safetensors) or a run directory", positional=True)
    out: str = option("", "the .onnx file to write", positional=True, output="run")  # claimed by export_onnx
    opset: int = option(18, "ONNX opset version")
    seq_len: int | None = option(None, "sequence length of the graph (default: the model's max_position_embeddings); "
                                       "fixed for mixing models, the example length for attention-only ones")
    batch_size: int = option(2, "batch size of the example input traced (the batch axis of the graph is dynamic)")
    encoder_only: bool = option(False, "export the bare encoder even when the folder holds a classification or "
                                       "regression head")
    check: bool = option(True, "compare with PyTorch on random inputs with onnxruntime before writing")
    check_batch_sizes: tuple[int, ...] = option((1, 3), "batch sizes checked besides --batch-size")
    atol: float = option(1e-4, "largest accepted absolute difference between ONNX and PyTorch outputs")
    seed: int = option(0, "seed of the random check inputs")
    overwrite: bool = option(False, "replace an existing OUT file (refused otherwise)")

    def __post_init__(self) -> None:
        if not self.model_dir or not self.out:
            raise ValueError("give the model folder and the output file: tokenmix export onnx MODEL_DIR OUT.onnx")
        check_ranges(self)
        if self.opset < 18:
            raise ValueError(f"opset={self.opset} is too old for the exporter (LayerNormalization, Gelu); use 18 or newer")


@dataclass
class ConvertConfig:
    src: str = option("", "source folder", positional=True)
    dst: str = option("", "destination folder (created)", positional=True, output="run")  # claimed by the converter
    overwrite: bool = option(False, "replace an existing destination (refused otherwise)")

    def __post_init__(self) -> None:
        if not self.src or not self.dst:
            raise ValueError("give the source and the destination folder: tokenmix convert DIRECTION SRC DST")


# The released checkpoints' architectures, by their names in the official code: the FNet paper's
# ModelArchitecture values, and the Sparse Mixers paper's two MoE models.
OFFICIAL_VARIANTS = ("f_net", "linear", "random", "ff_only", "bert", "sparse_mixer", "fast_sparse_mixer")


@dataclass
class OfficialConvertConfig:
    src: str = option("", "the official checkpoint: an FNet file (e.g. f_net_checkpoint), or a Sparse Mixers "
                          "replicated_checkpoint_<step> file, its folder, or its .zip", positional=True)
    dst: str = option("", "destination model folder (created)", positional=True, output="run")  # claimed by the converter
    variant: str | None = option(None, f"the checkpoint's architecture: {', '.join(OFFICIAL_VARIANTS)}; when not "
                                       "given, read from the weights and the file name (f_net, ff_only and random "
                                       "store the same weights)")
    vocab: str | None = option(None, "the SentencePiece vocabulary c4_bpe_sentencepiece.model; when not given, the "
                                     ".model file next to the checkpoint or in its .zip")
    seed: int = option(0, "random only: the pre-training seed its fixed mixing matrices were drawn from (official: 0)")
    overwrite: bool = option(False, "replace an existing destination (refused otherwise)")

    def __post_init__(self) -> None:
        if not self.src or not self.dst:
            raise ValueError("give the checkpoint and the destination folder: tokenmix convert from-official SRC DST")
        check_ranges(self)
        if self.variant and self.variant not in OFFICIAL_VARIANTS:
            raise ValueError(f"variant={self.variant!r} is not an official checkpoint; choose one of "
                             f"{', '.join(OFFICIAL_VARIANTS)}")
