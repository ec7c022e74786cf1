"""Helpers shared by the trainers."""

from __future__ import annotations

import pytest

import torch

import rlcyclegan.train.common as common
from rlcyclegan.train.common import autocast, parse_action_gates, use_bf16


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


@pytest.fixture
def run_held_by_another_process(tmp_path):
    """A child Python process that claims tmp_path/run, says so on stdout, then sleeps until killed."""
    import subprocess
    import sys

    hold = "import sys, time; from rlcyclegan.train.common import claim_run; claim_run(sys.argv[1]); print('held', flush=True); time.sleep(120)"
    child = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held", "the child process did not claim the run"
        yield tmp_path / "run", child
    finally:
        child.kill()
        child.wait(30)


def test_a_run_folder_held_by_another_process_is_refused_naming_its_pid(run_held_by_another_process):
    from rlcyclegan.train.common import RunInUse, claim_run

    run, child = run_held_by_another_process
    with pytest.raises(RunInUse, match=f"pid {child.pid}"):
        claim_run(run)


def test_a_killed_holder_leaves_nothing_stale(run_held_by_another_process):
    from rlcyclegan.train.common import claim_run, release_run

    run, child = run_held_by_another_process
    child.kill()
    child.wait(30)
    claim_run(run)
    release_run(run)


def test_claiming_a_run_this_process_holds_again_is_allowed_and_release_frees_it(tmp_path):
    import subprocess
    import sys

    from rlcyclegan.train.common import claim_run, release_run

    claim_run(tmp_path)
    claim_run(tmp_path)
    probe = "import sys; from rlcyclegan.train.common import claim_run; claim_run(sys.argv[1])"
    held = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True)
    release_run(tmp_path)
    free = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True)
    assert "RunInUse" in held.stderr and free.returncode == 0


def test_amp_off_keeps_fp32_on_every_device():
    assert not use_bf16(torch.device("cpu"), "off")
    assert not use_bf16(torch.device("cuda"), "off")


def test_amp_auto_is_bf16_on_cuda_and_on_a_cpu_only_with_bf16_units(monkeypatch):
    assert use_bf16(torch.device("cuda"), "auto")
    monkeypatch.setattr(common, "cpu_has_bf16_units", lambda: False)
    assert not use_bf16(torch.device("cpu"), "auto")
    monkeypatch.setattr(common, "cpu_has_bf16_units", lambda: True)
    assert use_bf16(torch.device("cpu"), "auto")


@pytest.mark.parametrize(("amx", "avx512_bf16", "expected"), [(True, False, True), (False, True, True), (False, False, False)])
def test_cpu_has_bf16_units_when_it_has_amx_or_avx512_bf16(monkeypatch, amx, avx512_bf16, expected):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    assert common.cpu_has_bf16_units() is expected


def test_cpu_has_bf16_units_treats_a_failing_probe_as_no(monkeypatch):
    def broken():
        raise RuntimeError("no cpuinfo")

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", broken, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", broken, raising=False)
    assert common.cpu_has_bf16_units() is False


def test_precision_name_is_what_amp_resolves_to(monkeypatch):
    monkeypatch.setattr(common, "cpu_has_bf16_units", lambda: False)
    assert common.precision_name(torch.device("cpu"), "auto") == "fp32"
    assert common.precision_name(torch.device("cpu"), "bf16") == "bf16"
    monkeypatch.setattr(common, "cpu_has_bf16_units", lambda: True)
    assert common.precision_name(torch.device("cpu"), "auto") == "bf16"
    assert common.precision_name(torch.device("cpu"), "off") == "fp32"


def test_describe_machine_ends_in_the_precision_when_recorded():
    info = {"cpu": "AMD EPYC", "cpus_available": 2, "torch_threads": 2}
    assert common.describe_machine(info) == "2 CPUs (AMD EPYC), 2 torch threads, no GPU"
    assert common.describe_machine({**info, "precision": "bf16"}) == "2 CPUs (AMD EPYC), 2 torch threads, no GPU, bf16"


def test_amp_bf16_autocasts_a_cpu_conv_to_bf16():
    conv = torch.nn.Conv2d(3, 4, 3)
    with autocast(torch.device("cpu"), "bf16"):
        y = conv(torch.rand(1, 3, 8, 8))
    with autocast(torch.device("cpu"), "off"):
        z = conv(torch.rand(1, 3, 8, 8))
    assert y.dtype == torch.bfloat16 and z.dtype == torch.float32


def test_unknown_amp_raises_naming_it():
    with pytest.raises(ValueError, match="amp must be one of"):
        use_bf16(torch.device("cpu"), "fp16")


def test_colour_jitter_at_strength_zero_leaves_images_unchanged():
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    params = common.color_jitter_params(3, 0.0, torch.Generator().manual_seed(1))

    assert torch.allclose(common.color_jitter(images, params), images, atol=1e-5)


def test_colour_jitter_keeps_images_in_range_and_changes_them_per_image():
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = common.color_jitter(images, common.color_jitter_params(4, 1.0, torch.Generator().manual_seed(1)))

    assert out.shape == images.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    changes = (out - images).abs().mean(dim=(1, 2, 3))
    assert bool((changes > 0.01).all()) and len(set(changes.tolist())) == 4


def test_colour_jitter_hue_rotation_keeps_grey_pixels_and_a_full_turn_is_identity():
    grey = torch.full((1, 3, 4, 4), 0.4)
    colour = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    quarter = {"brightness": torch.zeros(1), "contrast": torch.ones(1), "saturation": torch.ones(1), "hue": torch.full((1,), torch.pi / 2)}
    full = {**quarter, "hue": torch.full((1,), 2 * torch.pi)}

    assert torch.allclose(common.color_jitter(grey, quarter), grey, atol=1e-5)
    assert not torch.allclose(common.color_jitter(colour, quarter), colour, atol=1e-2)
    assert torch.allclose(common.color_jitter(colour, full), colour, atol=1e-5)


def test_camera_noise_at_zero_strength_leaves_images_unchanged():
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)

    assert torch.allclose(common.camera_noise(images, common.camera_noise_params(3, 0.0, 0.0, gen), gen), images, atol=1e-5)


def test_per_image_blur_keeps_flat_images_and_smooths_only_the_images_given_a_sigma():
    flat = torch.full((1, 3, 8, 8), 0.3)
    checker = (torch.arange(64).view(8, 8) % 2 == torch.arange(8).view(8, 1) % 2).float().expand(2, 3, 8, 8)
    out = common.gaussian_blur_per_image(checker, torch.tensor([0.0, 1.0]))

    assert torch.allclose(common.gaussian_blur_per_image(flat, torch.tensor([1.0])), flat, atol=1e-6)
    assert torch.allclose(out[0], checker[0], atol=1e-4)
    assert float(out[1].std()) < 0.5 * float(checker[1].std())


def test_camera_noise_std_follows_each_images_drawn_level():
    images = torch.full((2, 3, 32, 32), 0.5)
    gen = torch.Generator().manual_seed(0)
    params = {"noise": torch.tensor([0.0, 0.05]), "blur": torch.zeros(2)}
    out = common.camera_noise(images, params, gen)

    assert float((out[0] - 0.5).abs().max()) < 1e-6
    assert abs(float((out[1] - 0.5).std()) - 0.05) < 0.005


def test_jpeg_compress_loses_more_detail_at_lower_quality_and_keeps_shape_and_dtype():
    images = torch.randint(0, 256, (2, 32, 32, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    out = common.jpeg_compress(images, torch.tensor([95, 20]))
    err = (out.float() - images.float()).abs().mean(dim=(1, 2, 3))

    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert 0 < float(err[0]) < float(err[1])


def test_jpeg_compress_rejects_float_images_naming_the_shape():
    with pytest.raises(ValueError, match=r"uint8 \(B, H, W, 3\)"):
        common.jpeg_compress(torch.rand(1, 8, 8, 3), torch.tensor([50]))


def test_jpeg_quality_params_are_drawn_between_the_lowest_and_95():
    q = common.jpeg_quality_params(500, 40, torch.Generator().manual_seed(0))

    assert int(q.min()) >= 40 and int(q.max()) <= 95 and len(set(q.tolist())) > 40
    with pytest.raises(ValueError, match="lowest"):
        common.jpeg_quality_params(1, 0, torch.Generator())


# ------------------------------------------------------------------------------------ stop on a signal
def test_stop_on_signal_records_sigterm_instead_of_dying_and_restores_the_handler():
    import os
    import signal

    before = signal.getsignal(signal.SIGTERM)
    with common.StopOnSignal() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_second_signal_stops_at_once():
    import os
    import signal

    with common.StopOnSignal(), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)


def test_training_interrupted_names_the_signal_step_and_resume_command(tmp_path):
    import signal

    stop = common.StopOnSignal()
    stop.signum = signal.SIGTERM
    err = stop.interrupted(tmp_path / "run", 7)

    assert isinstance(err, KeyboardInterrupt) and err.signum == signal.SIGTERM
    assert "SIGTERM at step 7" in str(err) and f"--resume {tmp_path / 'run'}" in str(err)
