"""Image grids: numpy images laid out in rows and columns, with optional text labels, saved as PNG."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from rlcyclegan.data.dataset import EpisodeDataset

BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (0, 0, 0)


def _as_rgb(image: np.ndarray, where: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{where}: expected an (H, W, 3) or (H, W) image, got shape {image.shape}")
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating):
            image = np.clip(image, 0.0, 1.0) * 255.0 + 0.5  # floats are taken to be in [0, 1]
        image = image.astype(np.uint8)
    return image


def image_grid(
    rows: Sequence[Sequence[np.ndarray | None]] | np.ndarray,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    pad: int = 2,
    scale: int = 1,
) -> Image.Image:
    """Lay images out as a grid and return it as a PIL image.

    ``rows`` is a (R, C, H, W, 3) array or a list of rows, each a list of (H, W, 3) images (uint8,
    or floats in [0, 1]); rows may have different lengths and ``None`` leaves a cell empty. All
    images must share one size. ``scale`` enlarges every image by an integer factor (nearest
    neighbour, to keep pixels crisp). Labels are drawn with PIL's default font left of each row
    and above each column.
    """
    grid = [
        [None if im is None else _as_rgb(im, f"row {r}, column {c}") for c, im in enumerate(row)]
        for r, row in enumerate(rows)
    ]
    cells = [im for row in grid for im in row if im is not None]
    if not cells:
        raise ValueError("image_grid needs at least one image")
    h, w = cells[0].shape[:2]
    for r, row in enumerate(grid):
        for c, im in enumerate(row):
            if im is not None and im.shape[:2] != (h, w):
                raise ValueError(f"row {r}, column {c}: image is {im.shape[:2]} but the first image is {(h, w)}")
    n_rows, n_cols = len(grid), max(len(row) for row in grid)
    if row_labels is not None and len(row_labels) != n_rows:
        raise ValueError(f"{len(row_labels)} row labels for {n_rows} rows")
    if col_labels is not None and len(col_labels) != n_cols:
        raise ValueError(f"{len(col_labels)} column labels for {n_cols} columns")
    if scale < 1 or pad < 0:
        raise ValueError(f"need scale >= 1 and pad >= 0, got scale={scale}, pad={pad}")

    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_size(text: str) -> tuple[int, int]:
        left, top, right, bottom = measure.textbbox((0, 0), text, font=font)
        return right - left, bottom - top

    ch, cw = h * scale, w * scale
    line_h = text_size("Ag[]")[1] + 2
    col_lines = [wrap_label(t, cw, lambda t: text_size(t)[0]) for t in col_labels] if col_labels else []
    left = max((text_size(t)[0] for t in row_labels), default=0) + 2 * pad + 2 if row_labels else 0
    top = max((len(lines) for lines in col_lines), default=0) * line_h + 2 * pad if col_labels else 0
    canvas = Image.new("RGB", (left + n_cols * (cw + pad) + pad, top + n_rows * (ch + pad) + pad), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(grid):
        y = top + pad + r * (ch + pad)
        for c, im in enumerate(row):
            if im is None:
                continue
            tile = Image.fromarray(im)
            if scale > 1:
                tile = tile.resize((cw, ch), Image.Resampling.NEAREST)
            canvas.paste(tile, (left + pad + c * (cw + pad), y))
        if row_labels:
            th = text_size(row_labels[r])[1]
            draw.text((pad, y + (ch - th) // 2), row_labels[r], fill=TEXT_COLOUR, font=font)
    for c, lines in enumerate(col_lines):
        for k, text in enumerate(lines):
            tw = text_size(text)[0]
            draw.text((left + pad + c * (cw + pad) + (cw - tw) // 2, pad + k * line_h), text, fill=TEXT_COLOUR, font=font)
    return canvas


def wrap_label(text: str, width: int, measure) -> list[str]:
    """``text`` broken into lines no wider than ``width`` pixels (``measure(s)`` gives a string's width): after
    spaces and commas where it can, inside a word where a word alone is wider."""
    tokens, word = [], ""
    for ch in text:
        word += ch
        if ch in " ,":
            tokens.append(word)
            word = ""
    if word:
        tokens.append(word)
    lines, line = [], ""
    for tok in tokens:
        if measure((line + tok).rstrip()) <= width or not line:
            line += tok
        else:
            lines.append(line.rstrip())
            line = tok
        while measure(line.rstrip()) > width and len(line.rstrip()) > 1:  # one token wider than a cell: cut it
            cut = max(1, max(i for i in range(1, len(line) + 1) if measure(line[:i]) <= width or i == 1))
            lines.append(line[:cut])
            line = line[cut:]
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return lines


def save_grid(
    out_png: str | os.PathLike[str],
    rows: Sequence[Sequence[np.ndarray | None]] | np.ndarray,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    pad: int = 2,
    scale: int = 1,
) -> Path:
    """:func:`image_grid` written to ``out_png`` (parent directories are created). Returns the path."""
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(rows, row_labels, col_labels, pad, scale).save(out)
    return out


def episode_grid(
    dataset: EpisodeDataset,
    n_episodes: int,
    out_png: str | os.PathLike[str],
    max_frames: int | None = None,
    scale: int = 2,
) -> Path:
    """One row per episode (the first ``n_episodes``) showing its frames left to right.

    Rows are labelled with the episode index and outcome, columns with the time step. Episodes of
    different lengths leave their trailing cells empty; ``max_frames`` keeps only the first frames.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    episodes = [dataset[i] for i in range(min(n_episodes, len(dataset)))]
    rows = [list(ep.images[:max_frames]) for ep in episodes]
    labels = [f"ep {ep.index} {'success' if ep.success else 'fail'}" for ep in episodes]
    n_cols = max(len(row) for row in rows)
    return save_grid(out_png, rows, labels, [f"t={t}" for t in range(n_cols)], scale=scale)
