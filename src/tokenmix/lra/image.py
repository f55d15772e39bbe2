"""LRA Image: CIFAR-10 as sequences of 1024 grey levels (no torchvision).

Two file formats:

* the official CIFAR-10 python batches (``data_batch_1`` ... ``data_batch_5``, ``test_batch``, in the
  data folder or its ``cifar-10-batches-py/``). They are pickles, the format CIFAR-10 is published in,
  so we read them with a *restricted* unpickler that only builds plain containers, bytes and numpy
  arrays and refuses every other global: a file cannot run code. Validation = ``--val-size`` images
  held out of the training batches by the seed.
* ``{train,val,test}.npz`` with the original JPEG bytes (keys ``jpeg``, ``offsets``, ``labels``), as in
  ``shared/data/lra/cifar10``; decoded with Pillow.

Grey level = ``tf.image.rgb_to_grayscale`` as in the LRA input pipeline: weights 0.2989/0.5870/0.1140
on [0, 1] values, cast back to uint8 the way ``tf.image.convert_image_dtype`` does (x 255.5, truncated).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tokenmix.lra.splits import DataOptions, Split, cache_key, cached, make_padder, shuffled_holdout
from tokenmix.lra.tasks import BYTE_OFFSET, TaskSpec

GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140])
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
}


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only arrays and lists")


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 [N, 32, 32, 3] -> uint8 [N, 32, 32]."""
    gray = (rgb.astype(np.float64) / 255.0) @ GRAY_WEIGHTS
    return np.clip(np.floor(gray * 255.5), 0, 255).astype(np.uint8)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 [N, 32, 32, 3], labels [N]) of one official python batch; ValueError if corrupt."""
    if not path.is_file():
        raise FileNotFoundError(f"missing CIFAR-10 batch {path}")
    try:
        with open(path, "rb") as handle:
            batch = _DataOnlyUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise ValueError(f"{path} is not a readable CIFAR-10 python batch ({err}); the file is corrupt or "
                         f"truncated: download cifar-10-python.tar.gz again") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{path} is not a CIFAR-10 batch: expected a dict, found {type(batch).__name__}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{path} is not a CIFAR-10 batch: keys {sorted(batch)} lack 'data' and 'labels'")
    data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ValueError(f"{path}: expected uint8 data [N, 3072] and N labels, got {data.dtype} {data.shape} and "
                         f"{len(labels)} labels; the batch is corrupt")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: label {int(labels.max() if labels.max() > 9 else labels.min())} is outside the class set 0..9")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels.astype(np.int64)


def read_jpeg_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            jpeg, offsets, labels = data["jpeg"], data["offsets"], data["labels"].astype(np.int64)
    except (KeyError, ValueError, OSError) as err:
        raise ValueError(f"{path} is not a CIFAR-10 JPEG npz (keys jpeg, offsets, labels): {err}") from None
    images = np.stack([np.asarray(Image.open(io.BytesIO(jpeg[a:b].tobytes())).convert("RGB"))
                       for a, b in zip(offsets[:-1], offsets[1:])])
    return images, labels


def _find_batches(data_dir: Path) -> Path | None:
    for root in (data_dir, data_dir / "cifar-10-batches-py"):
        if (root / TEST_BATCH).is_file() or (root / TRAIN_BATCHES[0]).is_file():
            return root
    return None


def _sources(data_dir: Path) -> tuple[str, dict[str, Path]]:
    root = _find_batches(data_dir)
    if root is not None:
        return "pickle", {name: root / name for name in (*TRAIN_BATCHES, TEST_BATCH)}
    npz = {split: data_dir / f"{split}.npz" for split in ("train", "val", "test")}
    if all(p.is_file() for p in npz.values()):
        return "npz", npz
    raise FileNotFoundError(f"no CIFAR-10 data in {data_dir}: expected the python batches (data_batch_1..5, test_batch) "
                            f"or train/val/test.npz")


def load(task: TaskSpec, options: DataOptions, splits: Sequence[str]) -> dict[str, Split]:
    if not options.data_dir:
        raise ValueError("the image task needs --data-dir: a folder with the CIFAR-10 python batches or train/val/test.npz")
    kind, files = _sources(Path(options.data_dir))

    def build() -> dict[str, Split]:
        if kind == "pickle":
            train = [read_cifar_batch(files[name]) for name in TRAIN_BATCHES] if {"train", "val"} & set(splits) else []
            raw = {"test": read_cifar_batch(files[TEST_BATCH])} if "test" in splits else {}
            if train:
                images, labels = np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train])
                rest, held = shuffled_holdout(list(range(len(labels))), options.val_size, options.seed)
                raw["train"], raw["val"] = (images[rest], labels[rest]), (images[held], labels[held])
        else:
            raw = {split: read_jpeg_npz(files[split]) for split in splits}
        result = {}
        for split in splits:
            images, labels = raw[split]
            pixels = to_gray(images).reshape(len(images), -1).astype(np.int64) + BYTE_OFFSET
            padder = make_padder(task, options)
            result[split] = Split(padder.encode(pixels, f"image {split}"), labels,
                                  stats={"source": options.data_dir, "format": kind, "rows": len(labels), "malformed_rows": 0})
        return result

    key = cache_key(task="image", files={k: v for k, v in files.items() if v.is_file()}, pooling=options.pooling,
                    val_size=options.val_size, seed=options.seed)
    return cached(Path(options.cache_dir), f"image-{key}", build, splits)
