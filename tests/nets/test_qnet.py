"""The QT-Opt Q-network: shapes, one image encoding per state, and its errors."""

from __future__ import annotations

import pytest
import torch

from rlcyclegan.nets.qnet import GraspQNet, QNetConfig, canonical_action, make_qnet

TINY = dict(channels=4, head_channels=4, hidden=8)


def tiny_qnet(**kw) -> GraspQNet:
    torch.manual_seed(0)
    return GraspQNet(QNetConfig(**{**TINY, **kw}))


def images(b: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, size, size, 3), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("image_size", [32, 64, 128])
def test_forward_gives_one_logit_per_state_action_pair(image_size):
    net = tiny_qnet(image_size=image_size, merge_size=4, state_dim=2, action_dim=3)

    logits = net(images(5, image_size), torch.randn(5, 2), torch.randn(5, 3))

    assert logits.shape == (5,)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


@pytest.mark.parametrize("image_size", [32, 64, 128])
def test_head_gives_logits_for_n_actions_per_state(image_size):
    net = tiny_qnet(image_size=image_size, merge_size=4, state_dim=2, action_dim=3)

    feats = net.encode(images(4, image_size))
    logits = net.head(feats, torch.randn(4, 2), torch.randn(4, 7, 3))

    assert feats.shape == (4, TINY["head_channels"], 4, 4)
    assert logits.shape == (4, 7)


def test_network_without_state_accepts_empty_state_vectors():
    net = tiny_qnet(image_size=32, state_dim=0, action_dim=2)

    logits = net.head(net.encode(images(3, 32)), torch.zeros(3, 0), torch.randn(3, 5, 2))

    assert logits.shape == (3, 5) and torch.isfinite(logits).all()


def test_float_nchw_image_gives_the_same_logits_as_uint8_nhwc():
    net = tiny_qnet(image_size=32, action_dim=2)
    img = images(2, 32)
    as_float = img.permute(0, 3, 1, 2).float() / 255.0 - 0.5
    state, action = torch.randn(2, 2), torch.randn(2, 2)

    torch.testing.assert_close(net(as_float, state, action), net(img, state, action))


def test_head_over_n_actions_equals_forward_of_each_action():
    net = tiny_qnet(image_size=32, state_dim=2, action_dim=3).eval()
    img, state = images(3, 32, seed=1), torch.randn(3, 2)
    actions = torch.rand(3, 6, 3) * 2 - 1

    with torch.no_grad():
        batched = net.head(net.encode(img), state, actions)
        one_by_one = torch.stack([net(img, state, actions[:, j]) for j in range(actions.shape[1])], dim=1)

    torch.testing.assert_close(batched, one_by_one, rtol=1e-5, atol=1e-5)
    assert batched.std() > 0  # different actions really score differently


def test_head_runs_the_image_tower_once_per_state():
    net = tiny_qnet(image_size=32, action_dim=3)
    calls = []
    net.tower.register_forward_hook(lambda module, inp, out: calls.append(inp[0].shape[0]))

    net.head(net.encode(images(4, 32)), torch.randn(4, 2), torch.randn(4, 50, 3))

    assert calls == [4]


@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((2, 16, 16, 3), torch.uint8),  # wrong size
        ((2, 32, 32, 4), torch.uint8),  # RGBA
        ((32, 32, 3), torch.uint8),  # unbatched
        ((2, 3, 32, 32), torch.uint8),  # uint8 must be NHWC
        ((2, 32, 32, 3), torch.float32),  # float must be NCHW
    ],
)
def test_bad_image_shape_raises_naming_the_shape(shape, dtype):
    net = tiny_qnet(image_size=32)

    with pytest.raises(ValueError, match="image has shape") as err:
        net.encode(torch.zeros(shape, dtype=dtype))

    assert str(shape) in str(err.value)


def test_image_size_that_is_not_merge_size_times_a_power_of_two_raises():
    with pytest.raises(ValueError, match="image_size"):
        GraspQNet(QNetConfig(image_size=48, merge_size=4))


def test_make_qnet_applies_preset_and_overrides():
    net = make_qnet("small", image_size=32, action_dim=2)

    assert net.cfg.channels == 16 and net.cfg.image_size == 32 and net.cfg.action_dim == 2


def test_make_qnet_unknown_name_raises():
    with pytest.raises(ValueError, match="'huge'"):
        make_qnet("huge")


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_norm_option_adds_normalisation_layers_to_the_tower(norm):
    net = tiny_qnet(image_size=32, norm=norm)
    kinds = {type(m).__name__ for m in net.tower.modules()}
    assert ("BatchNorm2d" if norm == "batch" else "GroupNorm") in kinds
    logits = net.eval()(images(3, 32), torch.randn(3, 2), torch.randn(3, 6))
    assert logits.shape == (3,) and torch.isfinite(logits).all()


def test_unknown_norm_raises():
    with pytest.raises(ValueError, match="norm"):
        tiny_qnet(norm="layer")


def test_canonical_action_blanks_what_the_env_ignores_once_a_gate_is_on():
    a = torch.tensor([[0.5, -0.3, 0.2, 0.1, 0.2, 0.7],   # close (first gate) wins over terminate
                      [0.5, -0.3, 0.2, 0.1, -0.2, 0.7],  # terminate
                      [0.5, -0.3, 0.2, 0.1, -0.2, -0.7]])  # a move: only the gates change

    out = canonical_action(a, (4, 5))

    assert torch.equal(out, torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, -1.0],
                                          [0.0, 0.0, 0.0, 0.0, -1.0, 1.0],
                                          [0.5, -0.3, 0.2, 0.1, -1.0, -1.0]]))


def test_canonical_action_without_gates_is_the_identity():
    a = torch.randn(3, 4, 6)

    assert canonical_action(a, ()) is a


def test_head_scores_close_actions_alike_whatever_their_move_dimensions():
    net = tiny_qnet(image_size=32, state_dim=2, action_dim=6, action_gates=(4, 5)).eval()
    f = net.encode(images(2, 32))
    a = torch.tensor([[1.0, 1.0, -1.0, 0.3, 0.1, -0.5], [-0.7, 0.2, 0.9, -1.0, 0.9, 0.5]])

    logits = net.head(f, torch.zeros(2, 2), a.expand(2, 2, 6))

    assert torch.allclose(logits[:, 0], logits[:, 1])


def test_qnet_config_rejects_an_action_gate_outside_the_action():
    with pytest.raises(ValueError, match="action_gates"):
        QNetConfig(action_dim=6, action_gates=(4, 6))


@pytest.mark.parametrize("image_size", [32, 64, 128])
def test_max_pooled_head_gives_one_logit_per_state_action_pair(image_size):
    net = tiny_qnet(image_size=image_size, merge_size=8, head_pool="max", state_dim=2, action_dim=3)

    logits = net.head(net.encode(images(2, image_size)), torch.randn(2, 2), torch.randn(2, 7, 3))

    assert logits.shape == (2, 7) and torch.isfinite(logits).all()


def test_max_pooled_head_learns_from_its_position_embedding():
    net = tiny_qnet(image_size=32, merge_size=8, head_pool="max", state_dim=2, action_dim=3)

    net(images(4, 32), torch.randn(4, 2), torch.randn(4, 3)).sum().backward()

    assert net.merge_pos.grad is not None and net.merge_pos.grad.abs().sum() > 0


def test_unknown_head_pool_raises_naming_the_field():
    with pytest.raises(ValueError, match="head_pool"):
        tiny_qnet(head_pool="mean")


def test_fourier_features_widen_the_embedding_input_by_sines_and_cosines_per_frequency():
    net = tiny_qnet(state_dim=2, action_dim=3, fourier=4)

    assert net.embed[0].in_features == (2 + 3) * (1 + 2 * 4)


def test_fourier_off_keeps_the_state_dict_of_earlier_checkpoints():
    assert set(tiny_qnet(fourier=3).state_dict()) == set(tiny_qnet().state_dict())


def test_negative_fourier_raises_naming_the_field():
    with pytest.raises(ValueError, match="fourier"):
        tiny_qnet(fourier=-1)


def test_aux_outputs_come_with_the_q_logit_from_the_same_head():
    net = tiny_qnet(image_size=32, state_dim=2, action_dim=3, aux_outputs=2)
    feats = net.encode(images(4, 32))
    state, actions = torch.randn(4, 2), torch.randn(4, 5, 3)

    logits, aux = net.head(feats, state, actions, with_aux=True)

    assert logits.shape == (4, 5) and aux.shape == (4, 5, 2)
    assert torch.equal(logits, net.head(feats, state, actions))  # the Q logit does not change with aux on


def test_aux_outputs_off_keep_the_plain_critic_state_dict():
    plain = tiny_qnet(image_size=32).state_dict()
    with_aux = tiny_qnet(image_size=32, aux_outputs=1).state_dict()

    assert set(with_aux) - set(plain) == {"aux.weight", "aux.bias"}
    assert all(torch.equal(plain[k], with_aux[k]) for k in plain)


def test_asking_for_aux_outputs_of_a_network_without_them_is_an_error():
    net = tiny_qnet(image_size=32, state_dim=2, action_dim=3)

    with pytest.raises(ValueError, match="aux_outputs"):
        net.head(net.encode(images(1, 32)), torch.zeros(1, 2), torch.zeros(1, 3), with_aux=True)


def test_input_blur_adds_no_weights_so_state_dicts_move_between_networks():
    plain, blurred = tiny_qnet(image_size=32), tiny_qnet(image_size=32, input_blur=1.0)

    blurred.load_state_dict(plain.state_dict())  # strict: the same keys and shapes

    assert set(plain.state_dict()) == set(blurred.state_dict())


def test_input_blur_leaves_a_flat_image_unchanged():
    plain, blurred = tiny_qnet(image_size=32), tiny_qnet(image_size=32, input_blur=1.5)
    blurred.load_state_dict(plain.state_dict())
    flat = torch.full((2, 32, 32, 3), 90, dtype=torch.uint8)

    torch.testing.assert_close(blurred.encode(flat), plain.encode(flat))


def test_input_blur_smooths_pixel_noise_before_the_tower():
    net = tiny_qnet(image_size=32, input_blur=1.0)
    noisy = images(2, 32)
    seen = {}
    net.tower.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))

    net.encode(noisy)

    raw = net.preprocess(noisy)
    assert seen["x"].std() < 0.5 * raw.std()  # iid noise loses most of its variance under a 1-pixel Gaussian
    torch.testing.assert_close(seen["x"].mean(), raw.mean(), atol=0.01, rtol=0.0)


@pytest.mark.parametrize("sigma", [-0.5, 9.0])
def test_input_blur_out_of_range_raises_naming_the_field(sigma):
    with pytest.raises(ValueError, match="input_blur"):
        tiny_qnet(input_blur=sigma)
