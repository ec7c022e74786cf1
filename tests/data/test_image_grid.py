"""Image grids: layout, labels, ragged rows, episode grids."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rlcyclegan.data.dataset import EpisodeDataset
from rlcyclegan.data.grid import episode_grid, image_grid, wrap_label
from rlcyclegan.data.schema import shard_name
from rlcyclegan.data.store import write_shard


def _tile(value: int, size: int = 4) -> np.ndarray:
    return np.full((size, size, 3), value, dtype=np.uint8)


def test_image_grid_places_tiles_in_rows_and_columns():
    grid = np.asarray(image_grid([[_tile(10), _tile(20), _tile(30)], [_tile(40), _tile(50), _tile(60)]], pad=2))

    assert grid.shape == (2 * (4 + 2) + 2, 3 * (4 + 2) + 2, 3)
    assert grid[2, 2, 0] == 10 and grid[2, 8, 0] == 20 and grid[8, 14, 0] == 60
    assert grid[0, 0, 0] == 255  # padding is background


def test_image_grid_scale_enlarges_tiles():
    grid = image_grid([[_tile(10)]], pad=0, scale=3)

    assert grid.size == (12, 12)


def test_image_grid_labels_add_margins_with_text():
    plain = image_grid([[_tile(10), _tile(20)]])
    labelled = image_grid([[_tile(10), _tile(20)]], row_labels=["episode 0"], col_labels=["t=0", "t=1"])

    assert labelled.size[0] > plain.size[0] and labelled.size[1] > plain.size[1]
    margin = np.asarray(labelled)[:, : labelled.size[0] - plain.size[0]]
    assert (margin < 128).any()  # some dark text pixels were drawn


def test_image_grid_accepts_ragged_rows_and_empty_cells():
    grid = np.asarray(image_grid([[_tile(10)], [_tile(20), None, _tile(30)]], pad=0))

    assert grid.shape == (8, 12, 3)
    assert grid[0, 4, 0] == 255 and grid[4, 4, 0] == 255 and grid[4, 8, 0] == 30


def test_image_grid_converts_float_images_in_unit_range():
    grid = np.asarray(image_grid([[np.full((2, 2, 3), 1.0)]], pad=0))

    assert (grid == 255).all()


def test_image_grid_rejects_images_of_different_sizes():
    with pytest.raises(ValueError, match="row 0, column 1"):
        image_grid([[_tile(1, 4), _tile(1, 5)]])


def test_image_grid_rejects_wrong_label_count():
    with pytest.raises(ValueError, match="1 column labels for 2 columns"):
        image_grid([[_tile(1), _tile(2)]], col_labels=["t=0"])


def test_episode_grid_writes_one_row_per_episode(tmp_path, make_episode, shard_meta):
    write_shard(tmp_path / "d" / shard_name(0), [make_episode(i, 2 + i) for i in range(3)], **shard_meta)
    dataset = EpisodeDataset(tmp_path / "d")

    out = episode_grid(dataset, 2, tmp_path / "grid.png", scale=1)

    with Image.open(out) as img:
        width, height = img.size
    # two 8-pixel rows and four 8-pixel columns (longest episode shown: 3 steps, 4 frames), plus labels
    assert height > 2 * 8 and width > 4 * 8
    assert height < 3 * (8 + 2) + 40


def test_wrap_label_keeps_every_line_within_the_width_and_every_character():
    measure = lambda s: 6 * len(s)  # noqa: E731  (6 px per character)
    text = "G: RL-CycleGAN [augment_shift=2,max_minutes=100,online=true,steps=17000]"

    lines = wrap_label(text, 60, measure)

    assert len(lines) > 1 and all(measure(line) <= 60 for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert wrap_label("sim", 60, measure) == ["sim"]


def test_long_column_labels_make_the_label_band_taller_not_the_columns_wider():
    image = np.zeros((8, 8, 3), np.uint8)

    short = image_grid([[image, image]], col_labels=["a", "b"], scale=4)
    long = image_grid([[image, image]], col_labels=["a", "a much longer label, with, commas, in, it"], scale=4)

    assert long.width == short.width and long.height > short.height
