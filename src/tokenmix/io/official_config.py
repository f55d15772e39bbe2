"""Config of ``tokenmix convert from-official`` (torch-free, for the command line; the work is in
:mod:`tokenmix.io.official`)."""

from __future__ import annotations

from dataclasses import dataclass

from tokenmix.options import option

# The released checkpoints' architectures, by their names in the official code: the FNet paper's
# ModelArchitecture values, and the Sparse Mixers paper's two MoE models.
OFFICIAL_VARIANTS = ("f_net", "linear", "random", "ff_only", "bert", "sparse_mixer", "fast_sparse_mixer")


@dataclass
class OfficialConvertConfig:
    src: str = option("", "the official checkpoint: an FNet file (e.g. f_net_checkpoint), or a Sparse Mixers "
                          "replicated_checkpoint_<step> file, its folder, or its .zip", positional=True)
    dst: str = option("", "destination model folder (created)", positional=True)
    variant: str | None = option(None, f"the checkpoint's architecture: {', '.join(OFFICIAL_VARIANTS)}; when not "
                                       "given, read from the weights and the file name (f_net, ff_only and random "
                                       "store the same weights)")
    vocab: str | None = option(None, "the SentencePiece vocabulary c4_bpe_sentencepiece.model; when not given, the "
                                     ".model file next to the checkpoint or in its .zip")
    seed: int = option(0, "random only: the pre-training seed its fixed mixing matrices were drawn from (official: 0)")

    def __post_init__(self) -> None:
        if not self.src or not self.dst:
            raise ValueError("give the checkpoint and the destination folder: tokenmix convert from-official SRC DST")
        if self.variant and self.variant not in OFFICIAL_VARIANTS:
            raise ValueError(f"variant={self.variant!r} is not an official checkpoint; choose one of "
                             f"{', '.join(OFFICIAL_VARIANTS)}")
