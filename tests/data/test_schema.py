"""The schema as data: shard names, field table, and the documentation that describes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlcyclegan.data.schema import (
    EPISODE_AXIS,
    FIELDS,
    FIELDS_BY_NAME,
    OBS_AXIS,
    OPTIONAL_ATTRS,
    OPTIONAL_FIELDS,
    REQUIRED_ATTRS,
    STEP_AXIS,
    parse_shard_name,
    shard_name,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "data.md"


def test_shard_name_is_zero_padded_first_episode_and_parses_back():
    assert shard_name(50) == "shard-0000050.h5"
    assert parse_shard_name(shard_name(1234567)) == 1234567


@pytest.mark.parametrize("name", ["shard-0000050.h5.tmp", "shard-abc.h5", "dataset.json", "shard-.h5"])
def test_parse_shard_name_rejects_other_files(name):
    assert parse_shard_name(name) is None


def test_field_names_are_unique_and_indexed_by_a_known_axis():
    assert len({f.name for f in FIELDS}) == len(FIELDS)
    assert {f.axis for f in FIELDS} == {OBS_AXIS, STEP_AXIS, EPISODE_AXIS}


def test_optional_fields_are_distinct_from_required_ones_and_indexed_by_name():
    assert not {f.name for f in OPTIONAL_FIELDS} & {f.name for f in FIELDS}
    assert set(FIELDS_BY_NAME) == {f.name for f in (*FIELDS, *OPTIONAL_FIELDS)}
    assert FIELDS_BY_NAME["obs/privileged"].axis == OBS_AXIS


def test_documentation_describes_every_field_and_attribute():
    text = DOCS.read_text()

    for spec in (*FIELDS, *OPTIONAL_FIELDS):
        assert f"| `{spec.name}` | {spec.dtype} |" in text, spec.name
    for attr in (*REQUIRED_ATTRS, *OPTIONAL_ATTRS):
        assert f"`{attr}`" in text, attr
