"""LRA data: official file formats (ListOps TSV, IMDb TSV/aclImdb, AAN pairs, CIFAR-10 python batches),
bad input (malformed rows, labels, lengths, corrupt or malicious pickles), generators and the cache."""

from __future__ import annotations

import hashlib
import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from tokenmix.lra import image, listops, pathfinder
from tokenmix.lra.data import load_task_splits
from tokenmix.lra.splits import DataOptions, SequencePadder
from tokenmix.lra.tasks import BYTE_CLS, BYTE_OFFSET, get_lra_task

FIXTURES = Path(__file__).parent / "fixtures" / "lra"


def options(tmp_path: Path, data_dir: Path | None, pooling: str = "cls", **kw) -> DataOptions:
    return DataOptions(data_dir=str(data_dir) if data_dir else None, cache_dir=str(tmp_path / "cache"), seed=0,
                       pooling=pooling, **kw)


def decode(ids: np.ndarray) -> list[str]:
    return [listops.VOCAB[i] for i in ids if i != listops.PAD_ID]


def test_listops_official_format_keeps_brackets_and_drops_parentheses(tmp_path, capsys):
    splits = load_task_splits(get_lra_task("listops"), options(tmp_path, FIXTURES / "listops"))
    train = splits["train"]
    assert "skipped 2 malformed row(s)" in capsys.readouterr().err  # no label column; unknown token FOO
    assert train.stats["malformed_rows"] == 2 and len(train) == 4 and train.input_ids.shape[1] == 2000
    tokens = decode(train.input_ids[1])
    assert tokens == ["[CLS]", "[SM", "5", "[MIN", "4", "7", "]", "3", "]"]
    assert tokens.count("]") == 2 and "(" not in tokens and listops.UNK not in tokens
    # Labels are the values of the decoded expressions: nothing was lost in tokenisation.
    for row, label in zip(train.input_ids, train.labels):
        assert listops.evaluate_expression(decode(row)[1:]) == label
    assert splits["test"].labels.tolist() == [2, 3] and splits["val"].labels.tolist() == [2, 8]


def test_listops_label_outside_class_set_is_an_error(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for split in ("train", "val", "test"):
        (folder / f"basic_{split}.tsv").write_text("Source\tTarget\n[MAX 1 2 ]\t2\n[MAX 1 2 ]\t12\n")
    with pytest.raises(ValueError, match=r"line 3: label '12' is outside the class set 0\.\.9"):
        load_task_splits(get_lra_task("listops"), options(tmp_path, folder))


def test_listops_missing_file_names_the_expected_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="basic_train.tsv"):
        load_task_splits(get_lra_task("listops"), options(tmp_path, tmp_path))


def test_the_listops_task_has_the_vocabulary_of_the_grammar():
    assert get_lra_task("listops").vocab_size == listops.VOCAB_SIZE == len(listops.VOCAB)


def test_listops_generator_is_deterministic_disjoint_and_in_the_official_format(tmp_path):
    sizes = {"train": 12, "val": 4, "test": 4}
    first = listops.generate_files(tmp_path / "a", 3, sizes)
    second = listops.generate_files(tmp_path / "b", 3, sizes)
    texts = {}
    for split, path in first.items():
        assert path.read_text() == second[split].read_text()
        rows, stats = listops.read_file(path)
        assert len(rows) == sizes[split] and stats["malformed_rows"] == 0
        assert all(501 <= len(ids) <= 1999 for ids, _ in rows)
        texts[split] = {line.split("\t")[0] for line in path.read_text().splitlines()[1:]}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["val"]


def test_padder_truncates_with_a_count_or_refuses():
    padder = SequencePadder(4, cls_id=1, on_overflow="truncate", vocab_size=20)
    out = padder.encode([[5, 6], [5, 6, 7, 8, 9, 10]], "x")
    assert out.tolist() == [[1, 5, 6, 0, 0], [1, 5, 6, 7, 8]] and padder.truncated == 1
    with pytest.raises(ValueError, match="more than the task's 4.*--on-overflow truncate"):
        SequencePadder(4, None, "error", 20).encode([[1, 2, 3, 4, 5]], "file.tsv")
    with pytest.raises(ValueError, match="on_overflow"):
        SequencePadder(4, None, "drop", 20)


def test_text_tsv_bytes_holdout_and_malformed_rows(tmp_path, capsys):
    splits = load_task_splits(get_lra_task("text"), options(tmp_path, FIXTURES / "text", val_size=2))
    assert "skipped 2 malformed row(s)" in capsys.readouterr().err
    assert len(splits["train"]) == 4 and len(splits["val"]) == 2 and len(splits["test"]) == 2
    row = splits["test"].input_ids[0]
    assert row[0] == BYTE_CLS and bytes(int(i) - BYTE_OFFSET for i in row[1:] if i) == b"brilliant"
    assert splits["test"].labels.tolist() == [1, 0]
    train_text = {bytes(int(i) - BYTE_OFFSET for i in r[1:] if i) for r in np.concatenate([splits["train"].input_ids,
                                                                                         splits["val"].input_ids])}
    assert "Café scenes are charming".encode() in train_text  # UTF-8 bytes, not characters


def test_text_acl_imdb_layout_and_truncation(tmp_path):
    for split in ("train", "test"):
        for label, name in ((0, "neg"), (1, "pos")):
            folder = tmp_path / "aclImdb" / split / name
            folder.mkdir(parents=True)
            for i in range(3):
                (folder / f"{i}_{7 if label else 2}.txt").write_text(("good " if label else "bad ") * (i + 1) + "x" * 5000 * (i == 2))
    splits = load_task_splits(get_lra_task("text"), options(tmp_path, tmp_path, pooling="mean", val_size=2))
    test = splits["test"]
    assert test.labels.tolist() == [0, 0, 0, 1, 1, 1] and test.input_ids.shape == (6, 4095)
    assert test.stats["truncated"] == 2 and splits["train"].stats["truncated"] + splits["val"].stats["truncated"] == 2
    sampled = load_task_splits(get_lra_task("text"), options(tmp_path, tmp_path, pooling="mean", val_size=2,
                                                             eval_size=4), ("test",))["test"]
    rows = {r.tobytes(): label for r, label in zip(test.input_ids, test.labels)}
    assert len(sampled) == 4 and sampled.stats["sampled_from"] == 6  # a seeded sample of the test reviews
    assert all(rows[r.tobytes()] == label for r, label in zip(sampled.input_ids, sampled.labels))
    assert np.array_equal(sampled.input_ids, test.sample(4, 0).input_ids) and test.sample(9, 0) is test


def test_retrieval_pairs(tmp_path, capsys):
    splits = load_task_splits(get_lra_task("retrieval"), options(tmp_path, FIXTURES / "retrieval"))
    assert "skipped 1 malformed row(s)" in capsys.readouterr().err
    train = splits["train"]
    assert train.input_ids2 is not None and train.input_ids.shape == train.input_ids2.shape == (3, 4096)
    assert train.labels.tolist() == [1, 0, 1]
    assert bytes(int(i) - BYTE_OFFSET for i in train.input_ids2[1][1:] if i) == b"protein folding"
    batch = train.batch(np.arange(3))
    assert set(batch) == {"input_ids", "attention_mask", "input_ids2", "attention_mask2", "labels"}


def test_retrieval_label_outside_class_set(tmp_path):
    for name in ("train", "eval", "test"):
        (tmp_path / f"new_aan_pairs.{name}.tsv").write_text("2.0\ta\tb\tx\ty\n")
    with pytest.raises(ValueError, match="outside the class set 0..1"):
        load_task_splits(get_lra_task("retrieval"), options(tmp_path, tmp_path))


def write_cifar(folder: Path, n: int = 6) -> np.ndarray:
    """Official-format python batches (pickled dicts of numpy arrays) with known pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    every = []
    for name in (*image.TRAIN_BATCHES, image.TEST_BATCH):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        batch = {b"batch_label": name.encode(), b"labels": [int(i % 10) for i in range(n)], b"data": data,
                 b"filenames": [f"{i}.png".encode() for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        every.append(data)
    return np.concatenate(every)


def test_cifar_python_batches(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    splits = load_task_splits(get_lra_task("image"), options(tmp_path, tmp_path, pooling="mean", val_size=5))
    assert len(splits["train"]) == 25 and len(splits["val"]) == 5 and len(splits["test"]) == 6
    assert splits["test"].input_ids.shape == (6, 1024)
    rgb, labels = image.read_cifar_batch(tmp_path / "cifar-10-batches-py" / image.TEST_BATCH)
    expected = np.floor((rgb[0, 0, 0] / 255.0) @ image.GRAY_WEIGHTS * 255.5)  # tf.image.rgb_to_grayscale
    assert splits["test"].input_ids[0, 0] == expected + BYTE_OFFSET
    assert splits["test"].labels.tolist() == labels.tolist() == [0, 1, 2, 3, 4, 5]
    # White stays 255, black 0: the whole grey range is used.
    assert image.to_gray(np.full((1, 1, 1, 3), 255, np.uint8))[0, 0, 0] == 255
    assert image.to_gray(np.zeros((1, 1, 1, 3), np.uint8))[0, 0, 0] == 0


def test_corrupt_and_malicious_cifar_batches(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_2").write_bytes((tmp_path / "data_batch_2").read_bytes()[:200])
    with pytest.raises(ValueError, match="data_batch_2 is not a readable CIFAR-10 python batch"):
        load_task_splits(get_lra_task("image"), options(tmp_path, tmp_path, val_size=5))
    (tmp_path / "evil").write_bytes(pickle.dumps({b"data": __import__("os").getcwd}))
    with pytest.raises(ValueError, match="refusing to load posix.getcwd"):
        image.read_cifar_batch(tmp_path / "evil")
    (tmp_path / "shape").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"expected uint8 data \[N, 3072\]"):
        image.read_cifar_batch(tmp_path / "shape")
    (tmp_path / "label").write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}))
    with pytest.raises(ValueError, match="outside the class set"):
        image.read_cifar_batch(tmp_path / "label")


@pytest.mark.skipif(not (Path(__file__).parents[2] / "shared/data/lra/cifar10/test.npz").is_file(),
                    reason="../shared/data/lra/cifar10 not available")
def test_cifar_jpeg_npz_from_shared_data():
    images, labels = image.read_jpeg_npz(Path(__file__).parents[2] / "shared/data/lra/cifar10/test.npz")
    assert images.shape == (10000, 32, 32, 3) and np.bincount(labels).tolist() == [1000] * 10
    assert 115 < image.to_gray(images).mean() < 125


def test_pathfinder_generator(tmp_path):
    images, labels = pathfinder.generate_split(32, "hard", 8, seed=1, split_index=0)
    again, _ = pathfinder.generate_split(32, "hard", 8, seed=1, split_index=0)
    assert images.shape == (8, 32, 32) and images.dtype == np.uint8 and np.array_equal(images, again)
    assert labels.tolist() == [0, 1] * 4
    for picture in images:  # scaled to a brightest pixel of 255, mostly dark
        assert picture.max() == 255 and 0 < (picture > 0).mean() < 0.6
    assert not np.array_equal(images, pathfinder.generate_split(32, "hard", 8, seed=2, split_index=0)[0])
    easy = pathfinder.generate_split(32, "easy", 4, 0, 0)[0]
    assert (easy > 0).mean() < (images > 0).mean()  # shorter contours, less ink
    with pytest.raises(ValueError, match="difficulty"):
        pathfinder.generate_split(32, "extreme", 1, 0, 0)


# What generator version 2 draws, byte for byte: a change to the drawing that alters any image must bump
# GENERATOR_VERSION (the cache key), or cached splits would silently mix two generators' images.
IMAGE_DIGESTS = {2: {32: "d01fae272afd1b0b", 64: "54b9c84cd5954131"}}


@pytest.mark.parametrize(("size", "n"), [(32, 8), (64, 2)])
def test_pathfinder_images_change_only_with_the_generator_version(size, n):
    images, _ = pathfinder.generate_split(size, "hard", n, seed=1, split_index=0)
    assert hashlib.sha256(images.tobytes()).hexdigest()[:16] == IMAGE_DIGESTS[pathfinder.GENERATOR_VERSION][size]


# Means over 1,000 images of drewlinsley/pathfinder's snakes2.py run with LRA's 32x32 settings (seed 1),
# measured by results/lra/pathfinder-original/measure.py (stats.json there). Our first generator drew
# easy images with mean 20.6, ink 0.144 and 15.6 components: far outside these tolerances.
ORIGINAL_STATS = {"easy": {"mean": 13.10, "ink": 0.0903, "components": 7.09, "markers": 2.12},
                  "hard": {"mean": 20.20, "ink": 0.1448, "components": 12.74, "markers": 2.08}}


@pytest.mark.parametrize(("difficulty", "n"), [("easy", 300), ("hard", 80)])
def test_pathfinder_images_match_the_original_generator(difficulty, n):
    images, labels = pathfinder.generate_split(32, difficulty, n, seed=0, split_index=0)
    ours = pathfinder.image_statistics(images)
    for name, value in ORIGINAL_STATS[difficulty].items():
        assert ours[name] == pytest.approx(value, rel=0.05), name
    for label in (0, 1):  # the classes differ only in where the markers sit, not in ink
        assert pathfinder.image_statistics(images[labels == label])["ink"] == pytest.approx(ours["ink"], rel=0.1)


def test_pathfinder_paddles_are_drawn_like_the_original():
    ink, mask = pathfinder._paddle(0.0, 2, 0.5, 1)  # a horizontal paddle, tail at the patch centre
    assert ink.shape == mask.shape == (9, 9)
    assert ink[4, 4:7].min() > 0.3 and ink[:4].max() < 0.05 and ink[4, :3].max() < 0.05  # 2 px to the right
    assert mask.max() == 1.0 and (mask > 0.3).sum() > (ink > 0.3).sum()  # the margin around it
    assert pathfinder._seed_kernel(math.radians(-135), 2, 0.5, 1, 32) is not None  # reaches every pixel
    assert pathfinder._seed_kernel(0.0, 2, 0.5, 1, 32) is None  # leaves the bottom row unreachable


def test_pathfinder_cache_follows_the_generator_version(tmp_path, monkeypatch):
    task = get_lra_task("pathfinder")
    opts = options(tmp_path, None, pooling="mean", train_size=2, eval_size=2, difficulty="easy")
    load_task_splits(task, opts, ("test",))
    monkeypatch.setattr(pathfinder, "GENERATOR_VERSION", pathfinder.GENERATOR_VERSION + 1)
    split = load_task_splits(task, opts, ("test",))["test"]
    assert len(list((tmp_path / "cache").glob("pathfinder32-*"))) == 2  # older images are never reused
    assert split.stats["generator"] == pathfinder.GENERATOR_VERSION


def test_pathfinder_workers_draw_the_same_images(monkeypatch):
    monkeypatch.setattr(pathfinder, "_CHUNK", 3)  # 8 images = 3 jobs
    images, labels = pathfinder.generate_split(32, "hard", 8, seed=1, split_index=0, workers=2)
    alone, _ = pathfinder.generate_split(32, "hard", 8, seed=1, split_index=0)
    assert np.array_equal(images, alone) and labels.tolist() == [0, 1] * 4


def test_pathfinder_splits_are_cached(tmp_path):
    task = get_lra_task("pathfinder")
    opts = options(tmp_path, None, pooling="mean", train_size=4, eval_size=2)
    first = load_task_splits(task, opts)
    assert first["train"].input_ids.shape == (4, 1024) and len(first["test"]) == 2
    cached = list((tmp_path / "cache").glob("pathfinder32-*/train.npz"))
    assert len(cached) == 1
    again = load_task_splits(task, opts)  # read back from the .npz cache
    assert np.array_equal(first["val"].input_ids, again["val"].input_ids)
    assert not np.array_equal(first["val"].input_ids, first["test"].input_ids)
