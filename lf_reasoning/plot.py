"""PNG plots (stats, eval, grade): matplotlib's Agg canvas without pyplot, written whole or not at all."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from lf_reasoning.atomic import write_atomic
from lf_reasoning.errors import UserError
from lf_reasoning.paths import Target, is_png

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_target(path: Path) -> Target:
    """``--plot PATH`` as a write target: an existing file is replaced only when it is a PNG."""
    return Target("--plot", path, ours=is_png, foreign="is not a PNG")


def new_figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise UserError("--plot needs matplotlib: pip install matplotlib") from err
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    write_atomic(path, buffer.getvalue())
