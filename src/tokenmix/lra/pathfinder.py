"""Pathfinder (Linsley et al. 2018; LRA's Pathfinder and Path-X): is there a path between the dots?

Our generator, written from the published description and the settings LRA lists for its 32x32 data
(paddle length 2 px, gap 1 px, marker radius 1.5 px, 2x antialiasing, distractors of a third of the
contour length, ``20 // distractor_length`` of them). An image holds two *contours* of
``contour_length`` dashes ("paddles") that bend by at most ``MAX_TURN`` per paddle, plus shorter
distractor contours; contours never touch. Two round markers sit at contour ends: both ends of the
first contour (label 1, connected) or one end of each contour (label 0). Both classes draw the same
contours, and a negative is only accepted when its marker distance is within ``DISTANCE_TOLERANCE``
of the first contour's end-to-end distance, so neither ink nor marker distance gives the answer away:
the model has to follow the path.

Difficulty = contour length: ``easy`` 6, ``intermediate`` 9, ``hard`` 14 paddles (LRA uses hard).
Sizes 64 and 128 (Path-X) scale every length by ``size / 32``. Every image is a pure function of
(seed, split, index). The official release (``metadata/*.npy`` lists + PNG files) loads too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from tokenmix.lra.image import to_gray
from tokenmix.lra.splits import DataOptions, Split, cache_key, cached, make_padder
from tokenmix.lra.tasks import BYTE_OFFSET, TaskSpec

DIFFICULTY = {"easy": 6, "intermediate": 9, "hard": 14}
OFFICIAL_DIRS = {"easy": "curv_baseline", "intermediate": "curv_contour_length_9", "hard": "curv_contour_length_14"}
SIZES = {"train": 160_000, "val": 20_000, "test": 20_000}  # the LRA split of 200k images
MAX_TURN = math.pi / 4
DISTANCE_TOLERANCE = 2.0  # output pixels, times size / 32
PADDLE_LEVEL, MARKER_LEVEL = 0.75, 1.0
AA = 2  # antialiasing: draw at 2x, average 2x2 blocks
_CHUNK = 256  # images per generator job


class _Canvas:
    """The image at AA x resolution plus an occupancy grid that keeps contours apart."""

    def __init__(self, size: int, scale: float) -> None:
        self.n = size * AA
        self.image = np.zeros((self.n, self.n), dtype=np.float32)
        self.taken = np.zeros((self.n, self.n), dtype=bool)
        self.paddle = 2.0 * scale * AA
        self.gap = 1.0 * scale * AA
        self.margin = 1.0 * scale * AA
        self.steps = np.linspace(0.0, 1.0, int(np.ceil(self.paddle * 2)) + 1)[:, None]

    def inside(self, x: float, y: float) -> bool:
        return self.margin <= x < self.n - self.margin and self.margin <= y < self.n - self.margin

    def free(self, pts: np.ndarray) -> bool:
        """No point of ``pts`` on the reserved area around ink already committed."""
        cells = pts.astype(int)
        return not self.taken[cells[:, 1], cells[:, 0]].any()

    def reserve(self, pts: np.ndarray) -> None:
        for x, y in pts.astype(int):
            self.taken[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3] = True

    def contour(self, rng: np.random.Generator, paddles: int, tries: int = 30) -> tuple[np.ndarray, np.ndarray] | None:
        """Draw a dashed curve of ``paddles`` paddles away from all other ink; return its two end
        points, or None if there is no room. A paddle is reserved once the next one is placed, so a
        contour only has to keep clear of itself two paddles back."""
        for _ in range(tries):
            pos = rng.uniform(self.margin, self.n - self.margin, size=2)
            angle = rng.uniform(0, 2 * math.pi)
            before = self.taken.copy()
            segments: list[np.ndarray] = []
            for k in range(paddles):
                for _ in range(12):
                    turn = angle + (rng.uniform(-MAX_TURN, MAX_TURN) if k else 0.0)
                    direction = np.array([math.cos(turn), math.sin(turn)])
                    start = pos + (self.gap * direction if k else 0.0)
                    end = start + self.paddle * direction
                    if self.inside(*start) and self.inside(*end):
                        pts = start + self.steps * (end - start)
                        if self.free(pts):
                            break
                else:
                    break
                if segments:
                    self.reserve(segments[-1])
                segments.append(pts)
                pos, angle = pts[-1], turn
            if len(segments) == paddles:
                self.reserve(segments[-1])
                for pts in segments:
                    self.ink(pts)
                return segments[0][0], segments[-1][-1]
            self.taken = before
        return None

    def ink(self, pts: np.ndarray) -> None:
        """Stamp a 2x2 (render px) pen along ``pts``."""
        for x, y in pts.astype(int):
            block = self.image[y : y + 2, x : x + 2]
            np.maximum(block, PADDLE_LEVEL, out=block)

    def marker(self, centre: np.ndarray, radius: float) -> None:
        yy, xx = np.mgrid[0 : self.n, 0 : self.n]
        disc = (xx + 0.5 - centre[0]) ** 2 + (yy + 0.5 - centre[1]) ** 2 <= radius**2
        self.image[disc] = MARKER_LEVEL

    def finish(self) -> np.ndarray:
        small = self.image.reshape(self.n // AA, AA, self.n // AA, AA).mean(axis=(1, 3))
        return np.clip(np.round(small * 255), 0, 255).astype(np.uint8)


def generate_image(size: int, contour_length: int, label: int, rng: np.random.Generator) -> np.ndarray:
    """One uint8 [size, size] image with ``label`` 1 (markers connected) or 0."""
    scale = size / 32
    distractor_length = max(1, contour_length // 3)
    tolerance = DISTANCE_TOLERANCE * scale * AA
    for _ in range(100):
        canvas = _Canvas(size, scale)
        first = canvas.contour(rng, contour_length)
        if first is None:
            continue
        target = float(np.linalg.norm(first[0] - first[1]))
        markers = None
        for _ in range(20):  # redraw the second contour until a negative's marker distance matches
            snapshot = canvas.taken.copy(), canvas.image.copy()
            second = canvas.contour(rng, contour_length)
            if second is None:
                break
            if label == 1:
                markers = first
                break
            gap, a, b = min((abs(float(np.linalg.norm(a - b)) - target), a, b) for a in first for b in second)
            if gap <= tolerance:
                markers = a, b
                break
            canvas.taken, canvas.image = snapshot
        if markers is None:
            continue
        for _ in range(20 // distractor_length):
            canvas.contour(rng, distractor_length, tries=5)
        for point in markers:
            canvas.marker(point, 1.5 * scale * AA)
        return canvas.finish()
    raise RuntimeError(f"could not place two contours of {contour_length} paddles in a {size}x{size} image")


def _generate_range(size: int, contour_length: int, seed: int, split_index: int, start: int, stop: int) -> np.ndarray:
    """Images ``start..stop-1`` of a split (labels alternate 0, 1 by index)."""
    return np.stack([generate_image(size, contour_length, i % 2, np.random.default_rng([seed, split_index, i]))
                     for i in range(start, stop)])


def generate_split(size: int, difficulty: str, n: int, seed: int, split_index: int, progress: tqdm | None = None,
                   workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [n, size, size], labels [n]); balanced labels, image i from seed (seed, split, i),
    so ``workers`` processes drawing chunks give the same images as one."""
    if difficulty not in DIFFICULTY:
        raise ValueError(f"difficulty={difficulty!r} is not valid; choose one of {', '.join(DIFFICULTY)}")
    images = np.zeros((n, size, size), dtype=np.uint8)
    jobs = [(size, DIFFICULTY[difficulty], seed, split_index, start, min(start + _CHUNK, n)) for start in range(0, n, _CHUNK)]

    def store(job: tuple[int, ...], part: np.ndarray) -> None:
        images[job[4]:job[5]] = part
        if progress is not None:
            progress.update(len(part))

    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            for job, part in zip(jobs, pool.map(_generate_range, *zip(*jobs))):
                store(job, part)
    else:
        for job in jobs:
            store(job, _generate_range(*job))
    return images, np.arange(n, dtype=np.int64) % 2


def read_official(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """All images listed in ``folder/metadata/*`` (lines ``subdir file _ label ...``), in file order."""
    images, labels = [], []
    for meta in sorted((folder / "metadata").glob("*")):
        for line in meta.read_text().splitlines():
            parts = line.split()
            if len(parts) < 4:
                continue
            array = np.asarray(Image.open(folder / parts[0] / parts[1]))
            images.append(to_gray(array[None])[0] if array.ndim == 3 else array)
            labels.append(int(parts[3]))
    if not images:
        raise FileNotFoundError(f"no Pathfinder metadata in {folder}/metadata (official release layout)")
    return np.stack(images), np.array(labels, dtype=np.int64)


def load(task: TaskSpec, options: DataOptions, splits: Sequence[str]) -> dict[str, Split]:
    size = task.image_size
    if options.data_dir:
        folder = Path(options.data_dir)
        if not (folder / "metadata").is_dir():
            folder = folder / OFFICIAL_DIRS.get(options.difficulty, options.difficulty)
        key = cache_key(task=task.name, folder=str(folder.resolve()), pooling=options.pooling)
    else:
        sizes = {s: (options.train_size if s == "train" else options.eval_size) or SIZES[s] for s in SIZES}
        key = cache_key(task=task.name, seed=options.seed, sizes=sizes, difficulty=options.difficulty, pooling=options.pooling)

    def build() -> dict[str, Split]:
        if options.data_dir:
            images, labels = read_official(folder)
            cut = [int(len(labels) * 0.8), int(len(labels) * 0.9)]
            raw = dict(zip(("train", "val", "test"), zip(np.split(images, cut), np.split(labels, cut))))
        else:
            raw = {}
            with tqdm(total=sum(sizes[s] for s in splits), desc=f"generating {task.name}", unit="img") as bar:
                for split in splits:
                    raw[split] = generate_split(size, options.difficulty, sizes[split], options.seed,
                                                 list(SIZES).index(split), bar, options.workers)
        result = {}
        for split in splits:
            images, labels = raw[split]
            padder = make_padder(task, options)
            pixels = images.reshape(len(images), -1).astype(np.int64) + BYTE_OFFSET
            result[split] = Split(padder.encode(pixels, f"{task.name} {split}"), labels,
                                  stats={"rows": len(labels), "difficulty": options.difficulty, "malformed_rows": 0})
        return result

    return cached(Path(options.cache_dir), f"{task.name}-{key}", build, splits)
