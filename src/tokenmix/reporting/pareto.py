"""The speed-accuracy picture of the FNet paper's Figure 2: accuracy against time per training step
(log scale), one point per model and size, with the Pareto front (the points that no faster point
beats on accuracy) drawn as a dashed line."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from tokenmix.io.files import atomic_write


@dataclass
class Point:
    model: str
    size: str
    ms_per_step: float
    accuracy: float
    time_source: str  # where the time per step comes from (run summary or benchmark file)

    @property
    def label(self) -> str:
        return f"{self.model} {self.size}".strip()


def pareto_front(points: list[Point]) -> list[bool]:
    """For each point: is it on the front, i.e. is no other point at least as fast and at least as
    accurate? (Of identical points, the first one is.)"""
    return [not any(q.ms_per_step <= p.ms_per_step and q.accuracy >= p.accuracy
                    and (q.ms_per_step < p.ms_per_step or q.accuracy > p.accuracy or j < i)
                    for j, q in enumerate(points) if j != i)
            for i, p in enumerate(points)]


def plot_pareto(points: list[Point], accuracy_label: str, stem: Path) -> list[Path]:
    """Write ``stem``.png and ``stem``.svg (atomically); returns their paths."""
    # matplotlib only here, in the one step that draws (it is slow to import, ~0.3 s); no pyplot: no
    # global state, no GUI backend
    from matplotlib.figure import Figure  # noqa: PLC0415
    from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: PLC0415

    front = pareto_front(points)
    models = list(dict.fromkeys(p.model for p in points))
    sizes = list(dict.fromkeys(p.size for p in points))
    markers = "osD^vP*Xph"
    figure = Figure(figsize=(7, 4.8), layout="constrained")
    ax = figure.add_subplot()
    for p, best in zip(points, front):
        color = f"C{models.index(p.model) % 10}"
        ax.scatter(p.ms_per_step, p.accuracy, s=64, color=color, marker=markers[sizes.index(p.size) % len(markers)],
                   edgecolors="black" if best else "none", linewidths=1.2, zorder=3)
        ax.annotate(p.label, (p.ms_per_step, p.accuracy), xytext=(6, 4), textcoords="offset points", fontsize=9)
    times = [p.ms_per_step for p in points]
    right = max(times) * 2.0  # room for the labels right of the points
    # The front as a staircase: from each front point on, nothing slower is worth it unless above the line.
    line = sorted((p for p, best in zip(points, front) if best), key=lambda p: p.ms_per_step)
    ax.step([p.ms_per_step for p in line] + [right], [p.accuracy for p in line] + [line[-1].accuracy], where="post",
            linestyle="--", color="gray", zorder=2, label="Pareto front")
    ax.set_xscale("log")
    ax.margins(y=0.1)  # room for the labels above the points
    left = min(times) / 1.5
    ax.set_xlim(left, right)
    plain = FuncFormatter(lambda value, _: f"{value:g}")  # 600, 1000, not 6x10^2
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain if right / left < 30 else NullFormatter())  # label minor ticks if few decades
    ax.set_xlabel("time per training step (ms, log scale)")
    ax.set_ylabel(accuracy_label)
    ax.set_title(f"Speed-accuracy trade-off: {accuracy_label}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    paths = []
    for fmt in ("png", "svg"):
        path = stem.with_suffix(f".{fmt}")
        paths.append(atomic_write(path, partial(figure.savefig, format=fmt, dpi=150)))
    return paths
