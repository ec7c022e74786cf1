"""Pieces shared by the training loops: run folders, devices, RNG state, metrics files, curves."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


class TrainingDiverged(RuntimeError):
    """A non-finite loss: the run stops and the last good checkpoint stays in place."""


class RunInUse(RuntimeError):
    """Another live process is training in the same run folder."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped a training loop after it checkpointed the step it was on; ``--resume`` the run
    folder to go on. A KeyboardInterrupt, so that no ``except Exception`` on the way up treats it as a failure."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


class StopOnSignal:
    """While active, SIGINT and SIGTERM ask the training loop to stop instead of killing it mid-step.

    The loop checks :attr:`requested` after each step, checkpoints and raises :class:`TrainingInterrupted`
    (:meth:`interrupted`), so Ctrl-C or a scheduler's SIGTERM loses no steps. A second signal raises
    KeyboardInterrupt at once (the last periodic checkpoint is still there). Only the main thread can hold
    signal handlers; elsewhere this is inert and signals act as usual. Use as a context manager or with
    :meth:`install` / :meth:`restore`.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this step, once it is checkpointed "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    def install(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def __enter__(self) -> StopOnSignal:
        return self.install()

    def __exit__(self, *exc: Any) -> None:
        self.restore()

    def interrupted(self, run: Path, step: int) -> TrainingInterrupted:
        """The exception to raise once the loop has checkpointed ``step``."""
        assert self.signum is not None
        return TrainingInterrupted(self.signum, f"stopped by {signal.Signals(self.signum).name} at step {step}, checkpointed in "
                                                f"{Path(run) / 'checkpoints' / 'latest.pt'}; continue with --resume {run}")


_HELD_RUNS: dict[Path, int] = {}  # run folder -> descriptor of its lock file, for the runs this process holds


def claim_run(run: Path) -> None:
    """Takes ``run/.lock`` for this process, so that two trainings never write into one run folder.

    The lock is an advisory ``flock``: the operating system drops it when the holder exits, however it
    exits (a SIGKILLed run can be resumed at once; nothing stale is left to clean up). The file records
    the holder's pid and host for the error message. Claiming a run this process already holds is a
    no-op (a run that stopped with an exception can be resumed in the same Python session).
    Raises :class:`RunInUse` when another process holds it.
    """
    import fcntl
    import socket

    run = Path(run).resolve()
    if run in _HELD_RUNS:
        return
    run.mkdir(parents=True, exist_ok=True)
    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown process"
        os.close(fd)
        raise RunInUse(f"{run} is being trained by another process ({holder}); wait for it to end or stop it, "
                       "or give this run another --name") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
    _HELD_RUNS[run] = fd


def release_run(run: Path) -> None:
    """Drops the lock :func:`claim_run` took (a no-op when this process does not hold it)."""
    fd = _HELD_RUNS.pop(Path(run).resolve(), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise the named device (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return dev


def parse_action_gates(spec: str, env_id: str, action_dim: int | None = None) -> tuple[int, ...]:
    """``--action-gates``: "auto" (the ``action_gates`` the env class declares, else none; none either when
    they do not fit ``action_dim``, i.e. the data comes from another action space), "none", or "4,5"."""
    spec = spec.strip().lower()
    if spec == "auto":
        import gymnasium as gym

        import rlcyclegan.envs  # noqa: F401  (registers our envs)

        try:
            entry = gym.spec(env_id).entry_point
        except gym.error.Error:
            return ()
        env_cls = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
        gates = tuple(int(i) for i in getattr(env_cls, "action_gates", ()))
        return gates if action_dim is None or all(i < action_dim for i in gates) else ()
    if spec in ("none", ""):
        return ()
    try:
        return tuple(int(v) for v in spec.split(","))
    except ValueError:
        raise ValueError(f"action_gates must be 'auto', 'none' or comma-separated indices like '4,5' (got {spec!r})") from None


AMP_MODES = ("auto", "bf16", "off")


def cpu_has_bf16_units() -> bool:
    """Whether this CPU computes bf16 natively: AMX tiles (Intel Sapphire Rapids and later) or AVX512-BF16
    (AMD Zen 4 and later, Intel Cooper Lake). oneDNN then runs bf16 convs and matmuls faster than fp32
    (measured: an RL-CycleGAN cpu-preset step 1.45x faster on a 2-core Zen 4 EPYC, a QT-Opt TD step about
    1.7x on a 2-core AMX Xeon); without either, bf16 on a CPU is emulated and slower."""
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        probe = getattr(torch.cpu, name, None)
        try:
            if probe is not None and bool(probe()):
                return True
        except Exception:  # noqa: BLE001 - a probe that fails means no
            continue
    return False


def use_bf16(device: torch.device, amp: str = "auto") -> bool:
    """The ``amp`` setting resolved for ``device``: ``"auto"`` is bf16 on CUDA and on CPUs with native bf16
    units (AMX or AVX512-BF16), fp32 elsewhere; ``"bf16"`` and ``"off"`` force it."""
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
    if amp == "off" or device.type not in ("cuda", "cpu"):
        return False
    return amp == "bf16" or device.type == "cuda" or cpu_has_bf16_units()


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo, else platform.processor()), '' when unknown."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine_info(device: torch.device) -> dict:
    """What a measurement ran on: CPU model and counts, torch threads, device (and GPU name), torch, OS, Python."""
    import platform

    info = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(device),
            "torch": torch.__version__, "platform": platform.platform(), "python": platform.python_version()}
    if hasattr(os, "sched_getaffinity"):
        info["cpus_available"] = len(os.sched_getaffinity(0))
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def describe_machine(info: dict) -> str:
    """One line for a :func:`machine_info` dict, e.g. 'NVIDIA H200' or '2 CPUs (Intel Xeon ...), 2 torch threads',
    ending in the precision (', bf16' / ', fp32') when the dict records one (see :func:`precision_name`)."""
    cpus = info.get("cpus_available") or info.get("cpu_count")
    cpu = f"{cpus} CPUs" + (f" ({info['cpu']})" if info.get("cpu") else "")
    line = f"{info['gpu']} GPU + {cpu}" if info.get("gpu") else f"{cpu}, {info.get('torch_threads')} torch threads, no GPU"
    return line + (f", {info['precision']}" if info.get("precision") else "")


def precision_name(device: torch.device, amp: str = "auto") -> str:
    """What ``amp`` resolves to on ``device`` on this machine: 'bf16' (autocast) or 'fp32'. ``amp="auto"`` gives
    different answers on different CPUs, so a run records it beside the machine that trained it."""
    return "bf16" if use_bf16(device, amp) else "fp32"


def autocast(device: torch.device, amp: str = "auto"):
    """bf16 autocast where :func:`use_bf16` says so (weights, optimizer and losses stay fp32), else a no-op
    context. Both are deterministic on a CPU: a run resumed from a checkpoint repeats the uninterrupted one."""
    return torch.autocast(device.type if device.type in ("cuda", "cpu") else "cpu", dtype=torch.bfloat16,
                          enabled=use_bf16(device, amp))


def to_jsonable(obj: Any) -> Any:
    if is_dataclass(obj):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(data), indent=2) + "\n")
    os.replace(tmp, path)


def rng_state(np_rng: np.random.Generator, torch_gen: torch.Generator) -> dict:
    return {
        "numpy": np_rng.bit_generator.state,
        "torch_gen": torch_gen.get_state(),
        "torch_global": torch.get_rng_state(),
        "python": random.getstate(),
    }


def restore_rng_state(state: dict, np_rng: np.random.Generator, torch_gen: torch.Generator) -> None:
    np_rng.bit_generator.state = state["numpy"]
    torch_gen.set_state(state["torch_gen"])
    torch.set_rng_state(state["torch_global"])
    random.setstate(state["python"])


class MetricsLog:
    """Append-only JSON-lines file of evaluation records; truncated to a step on resume."""

    def __init__(self, path: Path):
        self.path = path

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def append(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def truncate_after(self, step: int) -> None:
        keep = [r for r in self.records() if r["step"] <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
        os.replace(tmp, self.path)


def plot_success_curve(records: list[dict], path: Path, title: str) -> None:
    """Success rate (with its 95% interval) against wall time and against episodes used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not records:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    succ = np.array([r["success"] for r in records])
    lo = np.array([r["success_low"] for r in records])
    hi = np.array([r["success_high"] for r in records])
    for ax, key, label in ((axes[0], "wall_minutes", "wall time (minutes, data collection included)"), (axes[1], "episodes", "environment episodes used (offline + on-policy)")):
        x = np.array([r[key] for r in records])
        ax.plot(x, succ, "o-", color="C0", ms=3)
        ax.fill_between(x, lo, hi, color="C0", alpha=0.2, lw=0)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"success ({records[-1]['eval_episodes']} eval episodes, 95% CI)")
    axes[0].set_ylim(0, 1)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


class Stopwatch:
    """Wall time that survives resumption: ``offset`` seconds from earlier sessions plus this one."""

    def __init__(self, offset: float = 0.0):
        self.offset = offset
        self.start = time.monotonic()

    def __call__(self) -> float:
        return self.offset + time.monotonic() - self.start


def dataclass_dict(obj: Any) -> dict:
    return asdict(obj)


# YIQ: luma and two chroma axes; a hue shift is a rotation of (I, Q), a saturation change their scaling.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def color_jitter_params(batch: int, strength: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-image photometric distortion factors (QT-Opt's brightness, contrast, saturation and hue
    distortions), drawn uniformly at ``strength`` in [0, 1]: brightness +-0.25 s (on a 0..1 scale), contrast and
    saturation factors in [1 - 0.5 s, 1 + 0.5 s] and [1 - s, 1 + s], hue rotated by up to +-0.5 s of a turn."""
    u = torch.rand((batch, 4), generator=generator, device=generator.device) * 2.0 - 1.0  # U(-1, 1)
    return {"brightness": 0.25 * strength * u[:, 0], "contrast": 1.0 + 0.5 * strength * u[:, 1],
            "saturation": 1.0 + strength * u[:, 2], "hue": math.pi * strength * u[:, 3]}


def color_jitter(images: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Apply :func:`color_jitter_params` factors to float (B, 3, H, W) images on a 0..1 scale (clamped to it).

    A hue rotation and saturation scaling of the chroma (YIQ), then contrast around each image's mean luma, then
    brightness. One set of factors per image, so s and s' of a transition can share theirs."""
    b = images.shape[0]
    images = images.float()  # the 3x3 inverse and the mixing stay in float32 under autocast too
    dev, dt = images.device, images.dtype
    p = {k: v.to(dev, dt).view(b) for k, v in params.items()}
    to_yiq = _RGB_TO_YIQ.to(dev, dt)
    cos, sin = torch.cos(p["hue"]) * p["saturation"], torch.sin(p["hue"]) * p["saturation"]
    chroma = torch.zeros((b, 3, 3), device=dev, dtype=dt)
    chroma[:, 0, 0] = 1.0
    chroma[:, 1, 1], chroma[:, 1, 2], chroma[:, 2, 1], chroma[:, 2, 2] = cos, -sin, sin, cos
    mix = torch.linalg.inv(to_yiq) @ chroma @ to_yiq  # (B, 3, 3): RGB -> RGB
    out = torch.einsum("bij,bjhw->bihw", mix, images)
    luma = torch.einsum("j,bjhw->bhw", to_yiq[0], out).mean(dim=(1, 2)).view(b, 1, 1, 1)
    out = (out - luma) * p["contrast"].view(b, 1, 1, 1) + luma + p["brightness"].view(b, 1, 1, 1)
    return out.clamp(0.0, 1.0)


def camera_noise_params(batch: int, noise: float, blur: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-image strengths of :func:`camera_noise`: Gaussian noise std uniform in [0, ``noise``] (0..1 scale) and
    Gaussian blur sigma uniform in [0, ``blur``] pixels."""
    u = torch.rand((batch, 2), generator=generator, device=generator.device)
    return {"noise": noise * u[:, 0], "blur": blur * u[:, 1]}


def gaussian_blur_per_image(images: torch.Tensor, sigma: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Blur each float (B, C, H, W) image with its own Gaussian sigma (pixels; 0 = unchanged), edges replicated."""
    b, c, h, w = images.shape
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    s = sigma.to(images.device, images.dtype).clamp_min(1e-3).view(b, 1)
    k = torch.exp(-0.5 * (offsets.view(1, -1) / s) ** 2)
    k = (k / k.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (B*C, 2r+1)
    x = torch.nn.functional.pad(images.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="replicate")
    x = torch.nn.functional.conv2d(x, k.view(b * c, 1, 1, -1), groups=b * c)
    x = torch.nn.functional.conv2d(x, k.view(b * c, 1, -1, 1), groups=b * c)
    return x.view(b, c, h, w)


def camera_noise(images: torch.Tensor, params: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
    """Camera-like distortions of float (B, 3, H, W) images on a 0..1 scale: a Gaussian blur, then additive Gaussian
    pixel noise (fresh per image and pixel, drawn from ``generator``), clamped to 0..1. A real camera's lens blur,
    sensor noise and compression differ from what a generator renders; a Q-network that learned from G(sim) only
    can read that difference (``scripts/diagnostics/real_look_ablation.py``)."""
    images = images.float()
    b = images.shape[0]
    out = gaussian_blur_per_image(images, params["blur"])
    noise = torch.randn(images.shape, generator=generator, device=generator.device).to(images.device)
    out = out + noise * params["noise"].to(images.device).view(b, 1, 1, 1)
    return out.clamp(0.0, 1.0)


JPEG_BEST_QUALITY = 95
"""Highest quality :func:`jpeg_compress` draws (PIL's recommended maximum)."""


def jpeg_quality_params(batch: int, lowest: int, generator: torch.Generator) -> torch.Tensor:
    """Per-image JPEG qualities of :func:`jpeg_compress`, uniform in [``lowest``, JPEG_BEST_QUALITY]."""
    if not 1 <= lowest <= JPEG_BEST_QUALITY:
        raise ValueError(f"jpeg quality: the lowest must be in [1, {JPEG_BEST_QUALITY}], got {lowest}")
    return torch.randint(lowest, JPEG_BEST_QUALITY + 1, (batch,), generator=generator, device=generator.device).cpu()


def jpeg_compress(images: torch.Tensor, qualities: torch.Tensor) -> torch.Tensor:
    """A JPEG round trip (4:2:0 chroma, as cameras stream) of each uint8 (B, H, W, 3) image at its own quality.
    Compression blocks and chroma bleeding are part of every real camera frame and of none that a generator
    draws; the random shift, blur and noise augmentations do not produce them."""
    from rlcyclegan.envs.camera import jpeg_roundtrip  # PIL; only needed when the augmentation is on

    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"jpeg_compress: expected uint8 (B, H, W, 3) images, got {images.dtype} {tuple(images.shape)}")
    arr = images.cpu().numpy()
    out = np.stack([jpeg_roundtrip(a, int(q)) for a, q in zip(arr, qualities.tolist())])
    return torch.from_numpy(out).to(images.device)
