"""Summary statistics of images drawn by the *original* Pathfinder generator with LRA's settings (32, 64, 128).

Runs ``snakes2.from_wrapper`` of a drewlinsley/pathfinder checkout (not part of tokenmix; needs numpy,
scipy, pillow and opencv-python-headless) with the settings LRA's TFDS builder documents for
each size (``tokenmix.lra.pathfinder.STYLES``, the same values our generator draws with), keeps the images in memory instead of PNG files and prints
``tokenmix.lra.pathfinder.image_statistics`` of them as JSON; with OUT_DIR it also writes them in the official
release layout (``imgs/0/sample_N.png`` + a text ``metadata/0.npy``), which ``lra eval --data-dir`` reads, for
the transfer check of a model trained on our images. The checkout's replacements of the removed
``scipy.misc.imresize``/``imsave`` do not scale float images to 0..255 as those did (markers come out
at 1/255); the originals' behaviour (``bytescale``) is restored here, as LRA's images were made with it.

    PYTHONPATH=src python results/lra/pathfinder-original/measure.py PATHFINDER_CHECKOUT SIZE CONTOUR_LENGTH N_IMAGES SEED [OUT_DIR]
"""

import contextlib
import io
import json
import random
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
from PIL import Image

from tokenmix.lra.pathfinder import AA, STYLES, image_statistics

checkout, (size, contour_length, n_images, seed) = sys.argv[1], map(int, sys.argv[2:6])
out_dir = Path(sys.argv[6]) if len(sys.argv) > 6 else None
style = STYLES[size]
sys.modules["matplotlib"] = types.ModuleType("matplotlib")  # imported by snakes.py, used only for display
sys.modules["matplotlib.pyplot"] = types.ModuleType("matplotlib.pyplot")
sys.path.insert(0, checkout)
import snakes  # noqa: E402
import snakes2  # noqa: E402


def bytescale(data):
    """scipy.misc.bytescale: float arrays scaled to 0..255 by their own min and max."""
    if data.dtype == np.uint8:
        return data
    low, high = data.min(), data.max()
    return (((data - low) * (255.0 / ((high - low) or 1))).clip(0, 255) + 0.5).astype(np.uint8)


def imresize(array, size, interp="lanczos"):
    """scipy.misc.imresize: bytescale, then a Pillow resize, returned as uint8."""
    resample = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3}[interp]
    return np.array(Image.fromarray(bytescale(np.asarray(array))).resize((size[1], size[0]), resample=resample))


images, metadata = [], []
snakes._imresize = snakes2._imresize = imresize
snakes2._imsave = lambda path, array: images.append(bytescale(array))  # scipy.misc.imsave = bytescale + save
snakes.save_metadata = lambda rows, path, batch: metadata.append(rows)

args = types.SimpleNamespace(
    batch_id=0, n_images=n_images, window_size=[size, size], padding=style.padding, antialias_scale=AA, LABEL=1,
    seed_distance=style.seed_distance, marker_radius=style.marker_radius, contour_length=contour_length,
    distractor_length=contour_length // 3, num_distractor_snakes=style.distractor_paddles // (contour_length // 3),
    snake_contrast_list=[style.snake_contrast], use_single_paddles=False, max_target_contour_retrial=4,
    max_distractor_contour_retrial=4, max_paddle_retrial=2, continuity=style.continuity,
    paddle_length=style.paddle_length, paddle_thickness=style.thickness, paddle_margin_list=list(style.margins),
    paddle_contrast_list=[style.paddle_contrast], pause_display=False, save_images=True, save_metadata=True,
    segmentation_task=False, segmentation_task_double_circle=False)
np.random.seed(seed)
random.seed(seed)
with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(io.StringIO()):
    args.contour_path = folder
    snakes2.from_wrapper(args)
labels = [int(row[3]) for row in metadata[0]]
print(json.dumps({"size": size, "contour_length": contour_length, "images": n_images, "seed": seed, "positives": sum(labels),
                  **image_statistics(np.stack(images))}))
if out_dir is not None:
    (out_dir / "imgs" / "0").mkdir(parents=True, exist_ok=True)
    (out_dir / "metadata").mkdir(exist_ok=True)
    for row, image in zip(metadata[0], images):
        Image.fromarray(image).save(out_dir / "imgs" / "0" / row[1])
    (out_dir / "metadata" / "0.npy").write_text("".join(f"imgs/0 {row[1]} {row[2]} {row[3]}\n" for row in metadata[0]))
