import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlcyclegan  # noqa: F401
from rlcyclegan.envs import ENV_IDS, DOMAINS, make_policy
from rlcyclegan.envs import grasp as g

CLOSE = np.array([0, 0, 0, 0, 1, -1], np.float32)
TERMINATE = np.array([0, 0, 0, 0, -1, 1], np.float32)
DOWN = np.array([0.2, -0.1, -1, 0.3, -1, -1], np.float32)


def make(env_id=ENV_IDS[0], **kw):
    kw.setdefault("image_size", 32)
    return gym.make(env_id, **kw)


def rollout(env, actions, seed):
    obs, _ = env.reset(seed=seed)
    frames = [obs]
    for a in actions:
        obs, *_ = env.step(a)
        frames.append(obs)
    return frames


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("domain", DOMAINS)
def test_gymnasium_env_checker_passes(env_id, domain):
    env = make(env_id, domain=domain)
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("domain", DOMAINS)
def test_same_seed_gives_identical_observations(domain):
    env = make(domain=domain)
    a = rollout(env, [DOWN, DOWN], seed=5)
    b = rollout(env, [DOWN, DOWN], seed=5)
    for x, y in zip(a, b):
        assert np.array_equal(x["image"], y["image"])
        assert np.array_equal(x["state"], y["state"])


def test_different_seeds_give_different_scenes():
    env = make()
    a, _ = env.reset(seed=1)
    b, _ = env.reset(seed=2)
    assert not np.array_equal(a["image"], b["image"])


def test_render_domains_shows_the_same_state_with_different_looks():
    env = make(image_size=64)
    env.reset(seed=3)
    out = env.unwrapped.render_domains(["sim", "real"])
    sim, real = out["sim"], out["real"]
    assert sim["object_mask"].any()
    assert np.array_equal(sim["object_mask"], real["object_mask"])  # calibrated camera: pixel aligned
    diff = np.abs(sim["image"].astype(int) - real["image"].astype(int)).mean()
    assert diff > 25, f"real and sim images should differ substantially, mean abs diff {diff:.1f}"


def test_render_domains_real_equals_the_real_env_observation():
    env = make(domain="real")
    obs, _ = env.reset(seed=4)
    assert np.array_equal(env.unwrapped.render_domains(["real"], masks=False)["real"]["image"], obs["image"])


def test_real_camera_offset_moves_the_real_view_only():
    env = make(image_size=64, real_camera_offset=(0.03, 0.0, 0.02, 3.0))
    env.reset(seed=3)
    out = env.unwrapped.render_domains(["sim", "real"])
    assert not np.array_equal(out["sim"]["object_mask"], out["real"]["object_mask"])


def test_real_style_seed_changes_the_look():
    a = make(domain="real", real_style=0).reset(seed=1)[0]["image"]
    b = make(domain="real", real_style=3).reset(seed=1)[0]["image"]
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 5


def test_scripted_policy_lifts_an_isolated_object_in_most_trials():
    env = make(num_objects=1)
    policy = make_policy("scripted", env, seed=0, action_noise=0.0, aim_noise=0.0, yaw_noise=0.0, miss_prob=0.0,
                         random_yaw_prob=0.0, wander_prob=0.0)
    wins = 0
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        policy.reset()
        done = False
        while not done:
            obs, reward, term, trunc, info = env.step(policy.act(obs))
            done = term or trunc
        assert reward == float(info["success"])
        wins += info["success"]
    assert wins >= 16, f"clean scripted grasps lifted the object in only {wins}/20 trials"


def test_close_ends_the_episode_with_the_gripper_closed():
    env = make()
    env.reset(seed=0)
    obs, reward, term, trunc, info = env.step(CLOSE)
    assert term and not trunc
    assert obs["state"][0] == 1.0
    assert "success" in info and reward in (0.0, 1.0)


def test_terminate_ends_the_episode_without_reward():
    env = make()
    env.reset(seed=0)
    _, reward, term, _, info = env.step(TERMINATE)
    assert term and reward == 0.0 and info["success"] is False


def test_step_limit_truncates_the_episode():
    env = make(max_steps=3)
    env.reset(seed=0)
    flags = [env.step(np.array([0.1, 0, 0.1, 0, -1, -1]))[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(6))


def test_step_penalty_is_subtracted_from_every_step():
    env = make(step_penalty=0.05)
    env.reset(seed=0)
    assert env.step(DOWN)[1] == pytest.approx(-0.05)


def test_state_reports_gripper_height_above_the_bin_floor():
    env = make()
    obs, _ = env.reset(seed=0)
    tcp_z = env.unwrapped.tcp[2]
    assert obs["state"][1] == pytest.approx(tcp_z - g.sc.BIN_FLOOR_Z, abs=1e-5)
    obs2, *_ = env.step(np.array([0, 0, -1, 0, -1, -1]))
    assert obs2["state"][1] < obs["state"][1] - 0.03


def test_pose_state_adds_the_gripper_pose_relative_to_the_bin():
    env = make(state="pose")
    obs, _ = env.reset(seed=0)
    u = env.unwrapped
    x, y, _, yaw = u.tcp
    assert obs["state"].shape == (5,) and env.observation_space["state"].shape == (5,)
    assert obs["state"][2:] == pytest.approx([x / g.WORKSPACE_HALF, y / g.WORKSPACE_HALF, yaw / (np.pi / 2)], abs=1e-5)
    obs2, *_ = env.step(np.array([1, 0, 0, 0, -1, -1]))
    assert obs2["state"][2] == pytest.approx(obs["state"][2] + g.MAX_XY_STEP / g.WORKSPACE_HALF, abs=0.05)


def test_pose_state_env_passes_the_gymnasium_checker():
    check_env(make(state="pose").unwrapped, skip_render_check=True)


def test_unknown_state_mode_raises():
    with pytest.raises(ValueError, match="state must be one of"):
        make(state="joints")


def test_out_of_range_actions_are_clipped():
    env = make()
    a = rollout(env, [np.array([5, -5, -9, 3, -2, -2])], seed=2)
    b = rollout(env, [np.array([1, -1, -1, 1, -1, -1])], seed=2)
    assert np.array_equal(a[-1]["image"], b[-1]["image"])


@pytest.mark.parametrize("bad", [np.full(6, np.nan), np.array([0, 0, np.inf, 0, 0, 0])])
def test_non_finite_action_raises(bad):
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN or inf"):
        env.step(bad)


def test_wrong_action_shape_raises():
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        env.step(np.zeros(4))


def test_unknown_domain_raises():
    with pytest.raises(ValueError, match="unknown domain 'photoreal'"):
        make(domain="photoreal")


@pytest.mark.parametrize("size", [8, 1024])
def test_image_size_out_of_range_raises(size):
    with pytest.raises(ValueError, match="image_size"):
        make(image_size=size)


def test_unknown_argument_raises():
    with pytest.raises(TypeError, match="num_objs"):
        make(num_objs=3)


def test_render_domains_rejects_unknown_domain():
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="unknown domain"):
        env.unwrapped.render_domains(["cartoon"])


def test_image_size_sets_observation_shape():
    obs, _ = make(image_size=48).reset(seed=0)
    assert obs["image"].shape == (48, 48, 3) and obs["image"].dtype == np.uint8


def test_test_split_draws_only_unseen_shapes():
    env = make(objects="test", num_objects=10)
    _, info = env.reset(seed=0)
    assert all(s % 10 == 9 for s in info["shape_ids"]) and len(info["shape_ids"]) == 10


def test_real_domain_carries_a_dynamics_gap():
    sim, real = make(domain="sim"), make(domain="real")
    sim.reset(seed=0)
    real.reset(seed=0)
    b = sim.unwrapped.scene.ids.slot_bodies[0]
    assert real.unwrapped.model.body_mass[b] == pytest.approx(g.REAL_MASS_SCALE * sim.unwrapped.model.body_mass[b])


def test_multibin_places_the_robot_at_different_bins():
    env = make(ENV_IDS[1])
    origins = set()
    for seed in range(8):
        env.reset(seed=seed)
        origins.add(round(float(env.unwrapped._origin[0]), 3))
    assert len(origins) == 3


def test_multibin_fixed_base_bin_is_respected():
    env = make(ENV_IDS[1], base_bin=2)
    env.reset(seed=0)
    assert env.unwrapped._origin[0] == pytest.approx(g.sc.BIN_SPACING)


def test_config_dict_records_the_env_version_and_parameters():
    cfg = make(domain="real", num_objects=3).unwrapped.config_dict()
    assert cfg["env_version"] == g.ENV_VERSION
    assert (cfg["domain"], cfg["num_objects"], cfg["image_size"]) == ("real", 3, 32)


def test_branch_leaves_the_episode_as_if_it_had_not_been_called():
    actions = [DOWN, DOWN, DOWN, CLOSE]
    plain = rollout(make(), actions, seed=4)
    env = make()
    obs, _ = env.reset(seed=4)
    branched = [obs]
    for a in actions:
        env.unwrapped.branch(CLOSE)
        obs, *_ = env.step(a)
        branched.append(obs)
    for p, b in zip(plain, branched):
        np.testing.assert_array_equal(p["image"], b["image"])
        np.testing.assert_array_equal(p["state"], b["state"])


def test_branch_returns_what_the_step_would_return():
    env = make()
    successes = 0
    for seed in range(6):
        policy = make_policy("scripted", env, seed=seed)
        obs, _ = env.reset(seed=seed)
        policy.reset()
        while True:
            a = np.asarray(policy.act(obs), np.float32)
            predicted = env.unwrapped.branch(a)
            obs, reward, term, trunc, _ = env.step(a)
            assert predicted[1:4] == (reward, term, trunc)
            np.testing.assert_array_equal(predicted[0]["image"], obs["image"])
            if term or trunc:
                successes += reward > 0
                break
    assert successes > 0  # the comparison covered successful grasps too


def test_branch_on_a_finished_episode_raises():
    env = make()
    env.reset(seed=0)
    env.step(TERMINATE)
    with pytest.raises(RuntimeError, match="finished episode"):
        env.unwrapped.branch(CLOSE)


def test_privileged_state_gives_the_gripper_and_object_positions_in_the_pose_frame():
    env = make(state="pose")
    obs, info = env.reset(seed=3)
    priv = info["privileged"]
    u = env.unwrapped
    n = len(u.object_positions)

    assert priv.shape == (g.PRIVILEGED_DIM,) and priv.dtype == np.float32
    np.testing.assert_allclose(priv[:2], obs["state"][2:4], atol=1e-6)
    np.testing.assert_allclose(priv[2 : 2 + 2 * n].reshape(n, 2) * g.WORKSPACE_HALF, u.object_positions[:, :2] - u._origin[:2], atol=1e-6)
    assert np.isposinf(priv[2 + 2 * n :]).all()
    _, _, _, _, info = env.step(DOWN)
    np.testing.assert_allclose(info["privileged"][:2], u.privileged_state()[:2])


def test_auxiliary_target_is_the_capped_distance_after_the_move_to_the_nearest_object():
    priv = np.full((1, g.PRIVILEGED_DIM), np.nan, np.float32)
    priv[0, :2] = [0.0, 0.0]
    priv[0, 2:4] = [g.MAX_XY_STEP / g.WORKSPACE_HALF, 0.0]  # one object one full step away in +x
    priv[0, 4:6] = [-0.9, -0.9]
    actions = np.zeros((1, 4, 6), np.float32)
    actions[0, :, 4:] = -1
    actions[0, 1, 0] = 1.0  # onto the object
    actions[0, 2, 0] = 0.5  # half way
    actions[0, 3, :] = [1, 0, 0, 0, 1, -1]  # a close: the gripper does not move

    d = g.aux_distance_targets(priv, actions)[0, :, 0]

    np.testing.assert_allclose(d, [0.5, 0.0, 0.25, 0.5], atol=1e-5)  # MAX_XY_STEP / cap = 0.5


def test_aux_distance_caps_give_one_target_per_cap():
    priv = np.full((1, g.PRIVILEGED_DIM), np.inf, np.float32)
    priv[0, :2] = [0.0, 0.0]
    priv[0, 2:4] = [0.02 / g.WORKSPACE_HALF, 0.0]  # one object 2 cm away in +x
    env = g.GraspEnv(aux_distance_caps=[0.1, 0.025])
    close = np.array([[[0, 0, 0, 0, 1, -1]]], np.float32)

    d = env.auxiliary_targets(priv, close)

    assert d.shape == (1, 1, 2)
    np.testing.assert_allclose(d[0, 0], [0.2, 0.8], atol=1e-5)
    env.close()


def test_non_positive_aux_distance_cap_is_rejected_by_name():
    with pytest.raises(ValueError, match="aux_distance_caps"):
        g.GraspEnv(aux_distance_caps=[0.1, 0.0])


def test_auxiliary_target_of_a_state_without_privileged_data_is_nan():
    d = g.aux_distance_targets(np.full((2, g.PRIVILEGED_DIM), np.nan, np.float32), np.zeros((2, 3, 6), np.float32))

    assert d.shape == (2, 3, 1) and np.isnan(d).all()
