import numpy as np
import pytest

from rlcyclegan.envs import shapes


def test_family_has_at_least_1000_distinct_shapes():
    keys = {np.round(shapes.make_shape(i).vertices, 5).tobytes() for i in range(shapes.NUM_SHAPES)}
    assert shapes.NUM_SHAPES >= 1000
    assert len(keys) == shapes.NUM_SHAPES


def test_train_and_test_splits_are_disjoint_and_cover_the_family():
    train, test = set(shapes.split_ids("train")), set(shapes.split_ids("test"))
    assert not train & test
    assert len(train) + len(test) == shapes.NUM_SHAPES
    assert len(test) >= 100


def test_split_is_fixed_across_calls():
    assert np.array_equal(shapes.split_ids("test"), shapes.split_ids("test"))
    assert np.array_equal(shapes.make_shape(17).vertices, shapes.make_shape(17).vertices)


def test_every_kind_occurs():
    kinds = {shapes.make_shape(i).kind for i in range(300)}
    assert kinds == {"hull", "box", "cylinder", "capsule", "ellipsoid"}


def test_shapes_fit_between_open_jaws():
    for i in range(0, shapes.NUM_SHAPES, 7):
        v = shapes.make_shape(i).vertices
        assert (v.max(0) - v.min(0)).min() <= 0.0551


def test_unknown_split_raises():
    with pytest.raises(ValueError, match="objects split"):
        shapes.split_ids("validation")
