"""Pathfinder (Linsley et al. 2018; LRA's Pathfinder and Path-X): is there a path between the dots?

A re-implementation of the generator LRA used, ``drewlinsley/pathfinder`` (``snakes2.py``), with the
settings LRA's TFDS builder lists for each size (:data:`STYLES`), so that a model trained here sees the
official images' distribution (a test compares image statistics with the original code's): two target *snakes* grow from seeds ``seed_distance`` apart, paddle by paddle (a
paddle is a short line drawn at 2x and downsampled with Lanczos); each next paddle sits on a circle
around a pivot ahead of the last one, its direction drawn with weight ``cos(continuity * turn)**2`` and
away from the ink mask (the dilated paddles), so contours are dashed and keep apart. Then up to
``distractor_paddles // (contour_length // 3)`` distractor snakes of a third of the length (at the
distractors' own contrast), two round markers (at one snake's both ends: label 1; at the origin of one
and the end of the other: label 0), and the image is scaled so its brightest pixel is 255 (the
``scipy.misc.imsave`` the original saved with). The only departures: labels alternate by index (balanced
splits) and the random numbers come from numpy's ``Generator`` seeded by (seed, split, index).

Difficulty = contour length: ``easy`` 6, ``intermediate`` 9, ``hard`` 14 paddles (LRA uses hard). The
official release (``metadata/*.npy`` lists + PNG files) loads too (``--data-dir``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from tokenmix.lra.image import to_gray
from tokenmix.lra.splits import DataOptions, Split, cache_key, cached, make_padder
from tokenmix.lra.tasks import BYTE_OFFSET, DIFFICULTY, TaskSpec
from tokenmix.progress import Progress

OFFICIAL_DIRS = {"easy": "curv_baseline", "intermediate": "curv_contour_length_9", "hard": "curv_contour_length_14"}
SIZES = {"train": 160_000, "val": 20_000, "test": 20_000}  # the LRA split of 200k images
# Part of every cache key: images cached by an older generator are never reused (1 = our own drawing
# before the original's was matched, 2 = snakes2.py).
GENERATOR_VERSION = 2
AA = 2  # antialias_scale: paddles and markers are drawn at 2x and downsampled
SEGMENT_TRIES, SNAKE_TRIES, PAIR_TRIES = 3, 5, 100_000  # max_paddle_retrial=2, max_distractor_contour_retrial=4
STOP_AVAILABILITY = 0.01  # no more distractors once less than 1% of the image is free
_CHUNK = 256  # images per generator job


@dataclass(frozen=True)
class Style:
    """The generator's settings for one image size (LRA's ``pathfinder.py`` TFDS builder docstrings)."""

    seed_distance: int  # pixels between the two target snakes' seeds
    marker_radius: float
    paddle_length: int
    thickness: float
    margins: tuple[int, ...]  # gap around paddles, one drawn per image
    continuity: float  # turn penalty: 1.0 lets a paddle turn up to 90 degrees
    distractor_paddles: int  # distractor snakes = this // distractor length
    snake_contrast: float  # targets: snake_contrast * paddle_contrast; distractors: snake_contrast
    paddle_contrast: float = 1.0
    padding: int = 1


STYLES = {32: Style(7, 1.5, 2, 0.5, (1,), 1.0, 20, 2.0, 0.75),
          64: Style(12, 2.5, 5, 1.0, (1,), 1.8, 22, 0.8),
          128: Style(20, 3.0, 5, 1.5, (2, 3), 1.8, 35, 0.9)}

Point = tuple[int, int]  # (row, column)


def _step(point: Sequence[float], angle: float, distance: float) -> Point:
    """``point`` moved ``distance`` along ``angle``, rounded up (the original's ``translate_coord``)."""
    return math.ceil(point[0] + distance * math.sin(angle)), math.ceil(point[1] + distance * math.cos(angle))


def _flip(angle: float) -> float:
    return angle + math.pi if angle < 0 else angle - math.pi


@cache
def _disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return x**2 + y**2 <= radius**2


def _dilate(image: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Grey dilation anchored at the footprint's centre, as ``cv2.dilate``: a pixel whose footprint lies
    wholly outside the image gets -inf."""
    return ndimage.maximum_filter(image.astype(np.float64), footprint=footprint, mode="constant", cval=-np.inf)


@cache
def _paddle(angle: float, length: int, thickness: float, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """(ink, mask) patches of side ``2 * reach + 1`` centred on the paddle's tail: the line drawn at AA x,
    Lanczos-downsampled, and its AA x dilation by the margin (the area other paddles must avoid)."""
    reach = length + math.ceil(thickness) + margin
    side, centre = 2 * reach * AA + 1, reach * AA
    head = _step((centre, centre), angle, length * AA)
    blown = Image.new("L", (side, side), 0)
    ImageDraw.Draw(blown).line([(centre, centre), (head[1], head[0])], fill=255, width=round(thickness * AA))
    dilated = Image.fromarray(_dilate(np.asarray(blown), _disk(margin * AA)).astype(np.uint8))
    small = (2 * reach + 1,) * 2
    return tuple(np.asarray(im.resize(small, Image.Resampling.LANCZOS), dtype=np.float64) / 255
                 for im in (blown, dilated))  # type: ignore[return-value]


@cache
def _seed_kernel(angle: float, length: int, thickness: float, margin: int, size: int) -> np.ndarray | None:
    """Footprint that dilates the occupied area into the tails a first paddle must avoid: the solid
    pixels of its mask with the tail one pixel off the centre, as the original builds it; None where
    this footprint leaves some pixel of a ``size`` image unreachable (see :meth:`_Painter.seed`)."""
    reach = length + margin
    kernel = _place((2 * reach + 1,) * 2, _paddle(angle, length, thickness, margin)[1], (reach + 1, reach + 1)) == 1.0
    return kernel if _dilate(np.zeros((size, size)), kernel).min() == 0 else None


@cache
def _ring(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, directions) of the pixels a paddle of ``radius`` can end on around its pivot: one
    sample per pixel of arc, rounded down, deduplicated in row-major order (``get_coords_cmf``)."""
    turns = np.radians(np.arange(0, 360, 360 / (2 * radius * math.pi)))
    offsets = np.unique(np.floor(np.stack([radius * np.sin(turns), radius * np.cos(turns)], 1)).astype(int), axis=0)
    return offsets, np.arctan2(offsets[:, 0], offsets[:, 1])


@cache
def _smoothness(angle: float, radius: int, continuity: float) -> np.ndarray:
    """``cos(continuity * turn)**2`` (turns capped at 90 degrees) for each end on the ring: the weight of a
    next paddle's direction given the last one's. Cached: directions come from a small set of angles."""
    turn = np.abs(_ring(radius)[1] - angle)
    return np.cos(np.minimum(np.minimum(turn, 2 * np.pi - turn) * continuity, np.pi / 2)) ** 2


@cache
def _margin_offsets(margin: int) -> np.ndarray:
    """[pixels, 2] offsets of the margin's disk: a paddle end is blocked by ink anywhere within it."""
    return np.argwhere(_disk(margin)) - margin


def _place(shape: tuple[int, int], patch: np.ndarray, centre: Point) -> np.ndarray:
    """``patch`` (odd side) centred on ``centre`` in a zero image of ``shape``, cut at the borders."""
    reach = len(patch) // 2
    out = np.zeros(shape)
    top, left = centre[0] - reach, centre[1] - reach
    rows = slice(max(top, 0), min(top + len(patch), shape[0]))
    cols = slice(max(left, 0), min(left + len(patch), shape[1]))
    out[rows, cols] = patch[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left]
    return out


@dataclass
class _Growth:
    """A target snake while it grows: the pivot and direction its next paddle attaches to, the mask of
    its last paddle (which joins the occupied area one paddle late) and its current end."""

    pivot: Point
    angle: float
    segment: np.ndarray
    end: Point


class _Painter:
    """The snake drawing of one image: its size, style, margin and random numbers."""

    def __init__(self, size: int, style: Style, rng: np.random.Generator) -> None:
        self.shape, self.style, self.rng = (size, size), style, rng
        self.margin = style.margins[int(rng.integers(len(style.margins)))]
        self.length = style.paddle_length

    def inside(self, point: Point) -> bool:
        return 0 <= point[0] < self.shape[0] and 0 <= point[1] < self.shape[1]

    def paddle(self, tail: Point, angle: float, contrast: float) -> tuple[np.ndarray, np.ndarray]:
        ink, mask = _paddle(angle, self.length, self.style.thickness, self.margin)
        return _place(self.shape, ink, tail) * contrast, _place(self.shape, mask, tail)

    def seed(self, blocked: np.ndarray, near: Point | None = None) -> tuple[Point, float, Point] | None:
        """(tail, angle, pivot) of a first paddle whose tail is free in ``blocked`` dilated by the
        paddle's shape (or, with ``near``, ``seed_distance`` from it); None after SEGMENT_TRIES.

        Kept from the original although it looks like an accident: where the shape's solid pixels (all
        on one side of its anchor) cannot reach into the image, the dilation is -inf and the original's
        coordinate search then finds nothing, so most directions fail to seed. This is why its images
        hold only a few distractors; without it easy images carry 1.6 times the original's ink."""
        reach = self.length + self.margin
        for _ in range(SEGMENT_TRIES):
            angle = math.radians(int(self.rng.integers(-180, 180)))
            if near is None:
                kernel = _seed_kernel(angle, self.length, self.style.thickness, self.margin, self.shape[0])
                if kernel is None:
                    return None
                free = np.argwhere(_dilate(blocked, kernel) <= 0.3)
                if not len(free):
                    return None
                row, column = free[int(self.rng.integers(len(free)))]
                tail = (int(row), int(column))
            else:
                turn = math.radians(int(self.rng.integers(0, 360)))
                distance = self.style.seed_distance
                tail = (round(near[0] + distance * math.sin(turn)), round(near[1] + distance * math.cos(turn)))
            head = _step(tail, angle, self.length)
            pivot = _step(head, _flip(angle), reach)
            if self.inside(head) and self.inside(pivot):
                return tail, angle, pivot
        return None

    def extend(self, pivot: Point, angle: float, mask: np.ndarray, contrast: float
               ) -> tuple[np.ndarray, np.ndarray, Point, float, Point] | None:
        """The next paddle: (ink, its mask, pivot, angle, head), or None at a dead end."""
        pivot = _step(pivot, angle, self.length + 2 * self.margin)
        radius = self.length + self.margin
        offsets, directions = _ring(radius)
        coords, smooth = offsets + pivot, _smoothness(angle, radius, self.style.continuity)
        if not (radius <= min(pivot) and max(pivot) < self.shape[0] - radius):  # the ring may leave the image
            keep = ((coords >= 0) & (coords < self.shape[0])).all(1)
            if not keep.any():
                return None
            coords, directions, smooth = coords[keep], directions[keep], smooth[keep]
        # The mask's maximum over the margin's disk around each end; pixels outside the image count as -inf
        # (they lie in a border of that width around the mask, so one gather and no bounds checks).
        bordered = np.full((self.shape[0] + 2 * self.margin,) * 2, -np.inf)
        inner = slice(self.margin, self.margin + self.shape[0])
        bordered[inner, inner] = mask
        near = coords[:, None, :] + _margin_offsets(self.margin) + self.margin
        nearby = bordered[near[..., 0], near[..., 1]].max(1)
        weights = smooth * (1 - nearby)
        if weights.sum() < 1e-4:
            return None
        cumulative = np.cumsum(weights / weights.sum())
        for _ in range(SEGMENT_TRIES):
            index = int(np.argmax(cumulative > self.rng.random()))
            head: Point = (int(coords[index, 0]), int(coords[index, 1]))
            ink, paddle_mask = self.paddle(head, _flip(float(directions[index])), contrast)
            if (mask + paddle_mask).max() < 1.8:
                return ink, paddle_mask, pivot, float(directions[index]), head
        return None

    def snake(self, image: np.ndarray, mask: np.ndarray, paddles: int, contrast: float
              ) -> tuple[np.ndarray, np.ndarray] | None:
        """A distractor of ``paddles`` paddles added to (image, mask), or None if it does not fit."""
        lined = mask.copy()
        lined[[0, -1], :] = lined[:, [0, -1]] = 1
        if (mask <= 0.3).mean() < STOP_AVAILABILITY:
            return None
        seeded = self.seed(lined)
        if seeded is None:
            return None
        tail, angle, pivot = seeded
        ink, segment = self.paddle(tail, angle, contrast)
        image = np.maximum(image, ink)
        for _ in range(paddles - 1):
            grown = self.extend(pivot, angle, mask, contrast)
            if grown is None:
                return None
            ink, next_segment, pivot, angle, _ = grown
            image, mask, segment = np.maximum(image, ink), np.maximum(mask, segment), next_segment
        return image, np.maximum(mask, segment)

    def targets(self, paddles: int) -> tuple[np.ndarray, np.ndarray, list[Point], list[Point]] | None:
        """Two snakes grown side by side from seeds ``seed_distance`` apart near the centre:
        (image, mask, their origins, their ends), or None if one cannot grow to full length."""
        style, pad, band = self.style, self.style.padding, 2 * self.style.seed_distance
        mask = np.zeros(self.shape)
        mask[:pad], mask[-pad:], mask[:, :pad], mask[:, -pad:] = 1, 1, 1, 1
        centre = mask.copy()
        centre[:band], centre[-band:], centre[:, :band], centre[:, -band:] = 1, 1, 1, 1
        contrast = style.snake_contrast * style.paddle_contrast
        first = self.seed(centre)
        if first is None:
            return None
        second = self.seed(centre, near=first[0])
        if second is None:
            return None
        image = np.zeros(self.shape)
        snakes = []
        for tail, angle, pivot in (first, second):
            ink, segment = self.paddle(tail, angle, contrast)
            image = np.maximum(image, ink)
            snakes.append(_Growth(pivot, angle, segment, tail))
        for _ in range(paddles - 1):
            for snake in snakes:
                grown = self.extend(snake.pivot, snake.angle, mask, contrast)
                if grown is None:
                    return None
                ink, segment, snake.pivot, snake.angle, snake.end = grown
                image, mask, snake.segment = np.maximum(image, ink), np.maximum(mask, snake.segment), segment
        # As in the original, only the second snake's last paddle joins the mask.
        return image, np.maximum(mask, snakes[1].segment), [first[0], second[0]], [snake.end for snake in snakes]

    def marker(self, centre: Point) -> np.ndarray:
        size = self.shape[0]
        y, x = np.ogrid[-centre[0] * AA : (size - centre[0]) * AA, -centre[1] * AA : (size - centre[1]) * AA]
        disk = Image.fromarray(((x**2 + y**2 <= (self.style.marker_radius * AA) ** 2) * 255).astype(np.uint8))
        return np.asarray(disk.resize(self.shape, Image.Resampling.LANCZOS), dtype=np.float64) / 255


def generate_image(size: int, contour_length: int, label: int, rng: np.random.Generator) -> np.ndarray:
    """One uint8 [size, size] image with ``label`` 1 (markers connected) or 0."""
    painter = _Painter(size, STYLES[size], rng)
    for _ in range(PAIR_TRIES):
        pair = painter.targets(contour_length)
        if pair is not None:
            break
    else:
        raise RuntimeError(f"could not grow two snakes of {contour_length} paddles in a {size}x{size} image")
    image, mask, origins, ends = pair
    distractor_length = max(1, contour_length // 3)
    for _ in range(STYLES[size].distractor_paddles // distractor_length):
        for _ in range(SNAKE_TRIES):
            drawn = painter.snake(image, mask, distractor_length, STYLES[size].snake_contrast)
            if drawn is not None:
                image, mask = drawn
                break
    origin = int(rng.integers(2))
    end = origin if label == 1 else 1 - origin
    image = np.maximum(image, np.maximum(painter.marker(origins[origin]), painter.marker(ends[end])))
    low, high = image.min(), image.max()
    return (((image - low) * (255 / ((high - low) or 1))).clip(0, 255) + 0.5).astype(np.uint8)


def image_statistics(images: np.ndarray, ink_level: int = 32, marker_level: int = 120) -> dict[str, float]:
    """Per-image means that tell generators apart: pixel value, ink fraction (pixels > ``ink_level``),
    8-connected ink components (dashes count separately) and markers (blobs of pixels >= ``marker_level``
    whose four neighbours are too: the discs, not the thin paddles)."""
    ink = images > ink_level
    cross = ndimage.generate_binary_structure(2, 1)
    components = [ndimage.label(picture, np.ones((3, 3)))[1] for picture in ink]
    markers = [ndimage.label(ndimage.binary_erosion(picture >= marker_level, cross))[1] for picture in images]
    return {"mean": float(images.mean()), "ink": float(ink.mean()), "components": float(np.mean(components)),
            "markers": float(np.mean(markers))}


def _generate_range(size: int, contour_length: int, seed: int, split_index: int, start: int, stop: int) -> np.ndarray:
    """Images ``start..stop-1`` of a split (labels alternate 0, 1 by index)."""
    return np.stack([generate_image(size, contour_length, i % 2, np.random.default_rng([seed, split_index, i]))
                     for i in range(start, stop)])


def generate_split(size: int, difficulty: str, n: int, seed: int, split_index: int, progress: Progress | None = None,
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
        key = cache_key(task=task.name, seed=options.seed, sizes=sizes, difficulty=options.difficulty, pooling=options.pooling,
                        generator=GENERATOR_VERSION)

    def build() -> dict[str, Split]:
        if options.data_dir:
            images, labels = read_official(folder)
            cut = [int(len(labels) * 0.8), int(len(labels) * 0.9)]
            raw = dict(zip(("train", "val", "test"), zip(np.split(images, cut), np.split(labels, cut))))
        else:
            raw = {}
            with Progress(total=sum(sizes[s] for s in splits), desc=f"generating {task.name}", unit="img") as bar:
                for split in splits:
                    raw[split] = generate_split(size, options.difficulty, sizes[split], options.seed,
                                                 list(SIZES).index(split), bar, options.workers)
        result = {}
        for split in splits:
            images, labels = raw[split]
            padder = make_padder(task, options)
            pixels = images.reshape(len(images), -1).astype(np.int64) + BYTE_OFFSET
            result[split] = Split(padder.encode(pixels, f"{task.name} {split}"), labels,
                                  stats={"rows": len(labels), "difficulty": options.difficulty, "malformed_rows": 0,
                                         "generator": None if options.data_dir else GENERATOR_VERSION})
        return result

    return cached(Path(options.cache_dir), f"{task.name}-{key}", build, splits)
