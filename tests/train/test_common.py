"""Helpers shared by the trainers."""

from __future__ import annotations

import pytest

from rlcyclegan.train.common import parse_action_gates


def test_auto_action_gates_are_what_the_grasp_env_declares():
    assert parse_action_gates("auto", "rlcyclegan/Grasp-v0") == (4, 5)


def test_auto_action_gates_of_an_env_that_declares_none_are_empty():
    assert parse_action_gates("auto", "CartPole-v1") == ()


def test_action_gates_can_be_given_as_indices_or_switched_off():
    assert parse_action_gates("3,1", "rlcyclegan/Grasp-v0") == (3, 1)
    assert parse_action_gates("none", "rlcyclegan/Grasp-v0") == ()


def test_malformed_action_gates_raise_naming_the_field():
    with pytest.raises(ValueError, match="action_gates"):
        parse_action_gates("close", "rlcyclegan/Grasp-v0")


def test_auto_action_gates_that_do_not_fit_the_action_size_are_dropped():
    assert parse_action_gates("auto", "rlcyclegan/Grasp-v0", action_dim=1) == ()
