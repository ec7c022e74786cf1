"""Image translation with a trained run's generators, and how good it is against paired renders.

    rlcyclegan translate --checkpoint runs/rl --input data/sim --direction sim2real --out out/sim2real
    rlcyclegan eval-translation --checkpoint runs/rl --episodes 20 --json

:func:`translate` runs G (sim -> real) or F (real -> sim) of an RL-CycleGAN / CycleGAN / GAN
checkpoint (``rlcyclegan train rlcyclegan``) over a folder of PNG/JPEG images, an .npz / .h5 holding
an (N, H, W, 3) uint8 ``images`` array, or an episode folder (its observation images), and writes PNGs.

:func:`evaluate_translation` plays episodes of the checkpoint's grasp env with the scripted policy and,
at every step (the observation each action is taken from), renders the *same state* in the sim and
the real domain with object masks (``GraspEnv.render_domains``): x (sim) and y (real) are paired, so a
translation can be scored against its ground truth, which a real robot never gives. It reports

* PSNR and SSIM of G(x) against y and of F(y) against x, over the whole image and over object pixels
  only (the target render's object mask), next to the same numbers for x against y (no translation);
* Q-consistency, for checkpoints with Q-networks: mean |Q_sim(x, a) - Q_real(G(x), a)| over the logged
  scripted actions a (the x-side RL-scene consistency the method trains for), and related gaps;
* object segmentation (content preservation, in the spirit of pix2pix / CycleGAN's "FCN score"): a small
  fully convolutional segmenter trained here on real renders and their object masks (separate episodes)
  marks objects in G(x); IoU, precision and recall against the paired real render's mask, next to the
  same segmenter on y (ceiling) and on x (no translation), and likewise for F(y) with a sim segmenter.
  Object-pixel PSNR asks G to guess the real colour and texture of an object it has never seen in `real`;
  this only asks it to draw a real-looking object where the sim render has one;
* FID and KID of G(x) against y, of F(y) against x and of x against y (the "no translation" gap),
  computed on the features of a network this project trains itself, NOT Inception-v3: the values are
  own-feature FID/KID, not comparable to published (Inception) FID/KID, only to each other with the
  same feature network. The default feature network is a *domain classifier*: a small conv encoder
  trained on the fly (``classifier_steps`` Adam steps, seeded) to tell sim renders from real renders
  apart, on paired renders of separate episodes (seeds ``seed + 10_000_000 + i``); its features are the
  global-average-pooled 64-d output of the conv encoder (the layer before the logit). It depends only on
  the env, the image size and the seed, so the numbers of different checkpoints (gan, cyclegan,
  rlcyclegan) are comparable. Features are standardised per dimension (mean 0, std 1 over the
  classifier's training renders) before FID/KID, so the values do not scale with activation sizes. ``features="q_sim"`` uses the checkpoint's own Q_sim image tower
  (``GraspQNet.encode``, global-average-pooled, standardised over the evaluation's x and y) instead
  (checkpoints with Q-networks only; values then differ from checkpoint to checkpoint).

All images are compared as uint8 pixels: generator outputs are quantised as the written PNGs are.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from rlcyclegan.data.dataset import IMAGE_EXTENSIONS, EpisodeDataset, load_image_array
from rlcyclegan.data.store import list_shards, read_shard
from rlcyclegan.metrics.image import frechet_distance, kid, psnr, ssim
from rlcyclegan.nets.generators import GeneratorConfig, from_gan_output, make_generator, to_gan_input
from rlcyclegan.nets.qnet import GraspQNet, QNetConfig
from rlcyclegan.rl.checkpoint import CheckpointError, load_checkpoint, resolve_checkpoint
from rlcyclegan.train.common import pick_device
from rlcyclegan.train.rlcyclegan import is_episode_source

DIRECTIONS = ("sim2real", "real2sim")
FEATURE_NETWORKS = ("domain_classifier", "q_sim")
FEATURE_NOTE = "own-feature FID/KID, not comparable to Inception FID"
DEFAULT_SEED = 3_000_000_000
"""Episode i of an evaluation is reset with seed + i (apart from the training data's seeds, as `rlcyclegan eval`)."""
CLASSIFIER_SEED_OFFSET = 10_000_000
"""The domain classifier's own episodes use seeds seed + CLASSIFIER_SEED_OFFSET + i (disjoint from the evaluation's)."""


# ===================================================================================== checkpoints
@dataclass
class TranslationModel:
    """The networks of an RL-CycleGAN checkpoint that translation needs, in eval mode."""

    path: Path
    method: str
    step: int | None
    config: dict
    G: nn.Module
    F: nn.Module | None
    q_sim: GraspQNet | None
    q_real: GraspQNet | None
    image_size: tuple[int, int] | None
    """(H, W) the generators were trained on, or None when the checkpoint does not tell."""

    def generator(self, direction: str) -> nn.Module:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'sim2real' or 'real2sim', got {direction!r}")
        if direction == "sim2real":
            return self.G
        if self.F is None:
            raise CheckpointError(f"{self.path}: a {self.method!r} run has no real2sim generator (only G: sim -> real)")
        return self.F


def checkpoint_image_size(ckpt: dict) -> tuple[int, int] | None:
    """(H, W) of the images a run was trained on: its Q-networks' input size, else the size of the images in
    its discriminator pools, else the size of its sim data (if still on disk); None if none of these tells."""
    for key in ("policy", "policy_sim"):
        entry = ckpt.get(key)
        if isinstance(entry, dict) and "qnet_config" in entry:
            s = int(entry["qnet_config"]["image_size"])
            return s, s
    state = ckpt.get("state") or {}
    for key in ("pool_y", "pool_x"):
        pool = state.get(key)
        if isinstance(pool, dict) and pool.get("images"):
            h, w = pool["images"][0].shape[-2:]
            return int(h), int(w)
    for p in (ckpt.get("config") or {}).get("sim_data") or ():
        try:
            path = Path(p)
            shards = list_shards(path) if path.is_dir() else ([path] if path.is_file() else [])
            if shards:
                h, w = read_shard(shards[0], load_images=False).image_shape[:2]
                return int(h), int(w)
        except Exception:  # the data may have moved or changed: the size stays unknown
            continue
    return None


def _generator(entry: dict, path: Path, what: str, device: torch.device) -> nn.Module:
    try:
        gen = make_generator(GeneratorConfig(**entry["config"]))
        gen.load_state_dict(entry["weights"])
    except (TypeError, KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: {what} weights do not match their config ({e})") from e
    return gen.to(device).eval()


def _qnet(entry: dict, path: Path, what: str, device: torch.device) -> GraspQNet:
    try:
        q = GraspQNet(QNetConfig(**entry["qnet_config"]))
        q.load_state_dict(entry["qnet"])
    except (TypeError, KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: {what} weights do not match their config ({e})") from e
    return q.to(device).eval()


def load_translation_model(checkpoint: str | Path, device: str | torch.device = "cpu") -> TranslationModel:
    """G, F (None for method gan), Q_sim and Q_real (None without Q-networks) of a checkpoint file or run folder.

    Raises CheckpointError for a missing or unreadable file and for a checkpoint of another kind
    (e.g. a QT-Opt policy, which has no generators)."""
    dev = torch.device(device)
    path = resolve_checkpoint(checkpoint)
    ckpt = load_checkpoint(path, map_location=dev)
    if ckpt.get("kind") != "rlcyclegan" or not isinstance(ckpt.get("generator"), dict):
        raise CheckpointError(f"{path}: a {ckpt.get('kind')!r} checkpoint without generators; expected an RL-CycleGAN / "
                              "CycleGAN / GAN checkpoint (from `rlcyclegan train rlcyclegan`)")
    config = ckpt.get("config") or {}
    if not config and (path.parent / "config.json").is_file():  # an experiment's final.pt written before it kept the config
        config = json.loads((path.parent / "config.json").read_text())
    g = _generator(ckpt["generator"], path, "sim2real generator", dev)
    f_entry = ckpt.get("generator_real2sim")
    f = _generator(f_entry, path, "real2sim generator", dev) if isinstance(f_entry, dict) else None
    q_sim = _qnet(ckpt["policy_sim"], path, "Q_sim", dev) if isinstance(ckpt.get("policy_sim"), dict) else None
    q_real = _qnet(ckpt["policy"], path, "Q_real", dev) if isinstance(ckpt.get("policy"), dict) else None
    return TranslationModel(path=path, method=str(config.get("method", "unknown")), step=ckpt.get("step"), config=config,
                            G=g, F=f, q_sim=q_sim, q_real=q_real, image_size=checkpoint_image_size(ckpt))


# ===================================================================================== translate
def _size_text(hw: tuple[int, int]) -> str:
    return f"{hw[1]}x{hw[0]}"


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if image.shape[:2] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BICUBIC), dtype=np.uint8)


def _fit(images: np.ndarray, source: Path, size: tuple[int, int] | None, resize: bool) -> np.ndarray:
    """An (N, H, W, 3) uint8 array from ``source``, checked against (or resized to) the training size."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"{source}: expected (N, H, W, 3) uint8 images, got {images.dtype} of shape {images.shape}")
    if size is None or tuple(images.shape[1:3]) == tuple(size):
        return images
    if not resize:
        raise ValueError(f"{source}: images are {_size_text(images.shape[1:3])} (width x height), the generator was trained on "
                         f"{_size_text(size)} images; pass --resize to resize them")
    return np.stack([_resize(im, size) for im in images])


def read_input_images(path: str | Path, size: tuple[int, int] | None = None, resize: bool = False) -> tuple[np.ndarray, list[str]]:
    """(images (N, H, W, 3) uint8, output PNG names) of a translation input.

    ``path``: a folder of PNG/JPEG images (names kept, extension .png), an episode folder or shard file
    (its observation images), an image file, or an .npz / .h5 holding an (N, H, W, 3) uint8 ``images`` array
    (names 000000.png, ...). Images whose size is not ``size`` (H, W) raise ValueError naming the file and both
    sizes, unless ``resize`` (bicubic to ``size``).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")

    def read_image(file: Path) -> np.ndarray:
        try:
            with Image.open(file) as img:
                arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"{file}: cannot read image: {e}") from None
        return _fit(arr[None], file, size, resize)[0]

    if is_episode_source(path):
        images = EpisodeDataset(path).images() if path.is_dir() else read_shard(path).arrays["obs/image"]
        images = _fit(images, path, size, resize)
        return images, [f"{i:06d}.png" for i in range(len(images))]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise ValueError(f"{path}: no images, episode shards or arrays found (looked for {', '.join(IMAGE_EXTENSIONS)} files)")
        names = [p.stem + ".png" for p in files]
        seen: dict[str, str] = {}
        for p, n in zip(files, names):
            if n in seen:
                raise ValueError(f"{path}: {seen[n]} and {p.name} would both be written as {n}")
            seen[n] = p.name
        images = [read_image(p) for p in files]
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            raise ValueError(f"{path}: images have different sizes {sorted(shapes)}; pass --resize to bring them to one size")
        return np.stack(images), names
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return read_image(path)[None], [path.stem + ".png"]
    if path.suffix in (".npz", ".h5", ".hdf5"):
        images = load_image_array(path)
    else:
        raise ValueError(f"{path}: not an image folder, image file, episode folder, .npz or .h5")
    images = _fit(images, path, size, resize)
    return images, [f"{i:06d}.png" for i in range(len(images))]


@torch.no_grad()
def translate_array(gen: nn.Module, images: np.ndarray, batch_size: int = 64, device: str | torch.device = "cpu") -> np.ndarray:
    """A generator over uint8 (N, H, W, 3) images, in batches: uint8 (N, H, W, 3), rounded as PNGs store them."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = torch.device(device)
    out = [from_gan_output(gen(to_gan_input(torch.as_tensor(images[i:i + batch_size]).to(dev))).float()).cpu().numpy()
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros_like(images)


def translate(checkpoint: str | Path, input: str | Path, direction: str = "sim2real", out: str | Path = "translated",
              batch_size: int = 32, device: str = "auto", resize: bool = False) -> dict[str, Any]:
    """Translate ``input`` (see :func:`read_input_images`) with G (sim2real) or F (real2sim) into PNGs in ``out``.

    Returns {"checkpoint", "direction", "input", "out", "count", "image_size", "files"}."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'sim2real' or 'real2sim', got {direction!r}")
    from PIL import Image

    dev = pick_device(device)
    model = load_translation_model(checkpoint, dev)
    gen = model.generator(direction)
    images, names = read_input_images(input, model.image_size, resize)
    try:
        result = translate_array(gen, images, batch_size, dev)
    except ValueError as e:  # e.g. a size the generator cannot take when the training size is unknown
        raise ValueError(f"{input}: {e}") from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, result):
        Image.fromarray(image).save(out / name)
    return {"checkpoint": str(model.path), "direction": direction, "input": str(input), "out": str(out), "count": len(names),
            "image_size": list(result.shape[1:3]), "files": names}


# ===================================================================================== paired renders
def make_paired_env(model: TranslationModel, objects: str = "test"):
    """The checkpoint's env (its id and env kwargs, at its image size) in the sim domain, which must render paired domains."""
    import gymnasium as gym

    import rlcyclegan.envs  # noqa: F401  (registers the grasp envs)

    env_id = str(model.config.get("env") or "")
    if not env_id:
        raise ValueError(f"{model.path}: the checkpoint's config names no env")
    try:
        extra = json.loads(model.config.get("env_kwargs") or "{}")
    except json.JSONDecodeError as e:
        raise ValueError(f"{model.path}: the checkpoint's env_kwargs are not valid JSON ({e})") from e
    kwargs = {**({"image_size": model.image_size[0]} if model.image_size else {}), **extra}
    if env_id.startswith("rlcyclegan/"):
        kwargs.update(domain="sim", objects=objects)
    env = gym.make(env_id, **kwargs)
    if not hasattr(env.unwrapped, "render_domains"):
        env.close()
        raise ValueError(f"{env_id} cannot render one state in several domains (no render_domains): paired sim/real "
                         "renders need an rlcyclegan grasp env")
    space = env.observation_space
    shape = tuple((space["image"] if isinstance(space, gym.spaces.Dict) else space).shape[:2])
    if model.image_size is not None and shape != tuple(model.image_size):
        env.close()
        raise ValueError(f"{env_id} renders {_size_text(shape)} images, the generator was trained on {_size_text(model.image_size)}")
    return env


def paired_renders(env, seeds, masks: bool = True) -> dict[str, np.ndarray]:
    """Play one scripted episode per seed; before every action render the state in sim and real.

    Returns arrays over all steps: "sim", "real" (N, H, W, 3) uint8, "state" (N, S), "action" (N, A) (the action
    taken from that state), "episode" (N,) and, with ``masks``, "sim_mask", "real_mask" (N, H, W) bool.
    """
    from rlcyclegan.data.collect import policy_seed
    from rlcyclegan.envs import make_policy

    keys = ("sim", "real", "state", "action", "episode") + (("sim_mask", "real_mask") if masks else ())
    rows: dict[str, list] = {k: [] for k in keys}
    u = env.unwrapped
    for i, seed in enumerate(seeds):
        policy = make_policy("scripted", env, seed=policy_seed(int(seed)))
        obs, _ = env.reset(seed=int(seed))
        policy.reset()
        while True:
            r = u.render_domains(("sim", "real"), masks=masks)
            action = np.asarray(policy.act(obs), np.float32)
            rows["sim"].append(r["sim"]["image"])
            rows["real"].append(r["real"]["image"])
            rows["state"].append(np.asarray(obs["state"] if isinstance(obs, dict) else np.zeros(0), np.float32))
            rows["action"].append(action)
            rows["episode"].append(i)
            if masks:
                rows["sim_mask"].append(r["sim"]["object_mask"])
                rows["real_mask"].append(r["real"]["object_mask"])
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
    return {k: np.stack(v) for k, v in rows.items()}


# ===================================================================================== metrics
def _mean(values) -> float | None:
    """Mean of the finite-or-inf values, None when there are none (all NaN)."""
    v = np.asarray(values, np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if len(v) else None


def image_metrics(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """Mean per-image PSNR (dB) and SSIM of ``pred`` against ``target``, whole image and object pixels only.

    Object values average over the images that show an object (``object_images``); None when none does."""
    p_obj, s_obj = psnr(pred, target, mask), ssim(pred, target, mask)
    return {"psnr": _mean(psnr(pred, target)), "ssim": _mean(ssim(pred, target)), "psnr_object": _mean(p_obj),
            "ssim_object": _mean(s_obj), "object_images": int(mask.reshape(len(mask), -1).any(1).sum())}


@torch.no_grad()
def q_values(q: GraspQNet, images: np.ndarray, states: np.ndarray, actions: np.ndarray, batch_size: int, device) -> np.ndarray:
    """Q(s, a) in [0, 1] of uint8 images with their states and actions, (N,)."""
    dev = torch.device(device)
    out = []
    for i in range(0, len(images), batch_size):
        img = torch.as_tensor(images[i:i + batch_size]).to(dev)
        st = torch.as_tensor(states[i:i + batch_size]).to(dev)
        ac = torch.as_tensor(actions[i:i + batch_size]).to(dev)
        out.append(torch.sigmoid(q(img, st, ac).float()).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def q_consistency(model: TranslationModel, data: dict, gx: np.ndarray, fy: np.ndarray | None, batch_size: int, device) -> dict[str, Any]:
    """RL-scene consistency on the logged actions: mean |Q_sim(x, a) - Q_real(G(x), a)| and related gaps."""
    assert model.q_sim is not None and model.q_real is not None
    x, y, s, a = data["sim"], data["real"], data["state"], data["action"]
    for name, q in (("Q_sim", model.q_sim), ("Q_real", model.q_real)):
        if q.cfg.state_dim != s.shape[1] or q.cfg.action_dim != a.shape[1]:
            raise ValueError(f"{model.path}: {name} takes state {q.cfg.state_dim} / action {q.cfg.action_dim}, the env gives "
                             f"{s.shape[1]} / {a.shape[1]}")
    q_x = q_values(model.q_sim, x, s, a, batch_size, device)
    q_gx = q_values(model.q_real, gx, s, a, batch_size, device)
    q_y = q_values(model.q_real, y, s, a, batch_size, device)
    out: dict[str, Any] = {
        "mean_abs_diff": float(np.abs(q_x - q_gx).mean()),  # |Q_sim(x, a) - Q_real(G(x), a)|
        "max_abs_diff": float(np.abs(q_x - q_gx).max()),
        "real_pair_mean_abs_diff": float(np.abs(q_y - q_gx).mean()),  # |Q_real(y, a) - Q_real(G(x), a)|, y the paired real render
        "no_translation_mean_abs_diff": float(np.abs(q_x - q_y).mean()),  # |Q_sim(x, a) - Q_real(y, a)|
        "q_sim_x_mean": float(q_x.mean()), "q_real_gx_mean": float(q_gx.mean()), "q_real_y_mean": float(q_y.mean()),
        "pairs": int(len(x)), "actions": "the scripted policy's logged actions",
    }
    if fy is not None:
        q_fy = q_values(model.q_sim, fy, s, a, batch_size, device)
        out["real_side_mean_abs_diff"] = float(np.abs(q_y - q_fy).mean())  # |Q_real(y, a) - Q_sim(F(y), a)|
    return out


# ===================================================================================== feature networks
class DomainClassifier(nn.Module):
    """A small conv encoder and a linear head: the logit that an image is a real (not a sim) render.

    :meth:`features` is the penultimate layer: the encoder's map, global-average-pooled to 4 * width values."""

    def __init__(self, width: int = 16):
        super().__init__()
        c = width
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(4 * c, 4 * c, 3, padding=1), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(4 * c, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """float (B, 3, H, W) in [-1, 1] -> (B, 4 * width)."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x)).squeeze(-1)


def train_domain_classifier(sim: np.ndarray, real: np.ndarray, steps: int = 300, seed: int = 0, device="cpu",
                            batch_size: int = 32, lr: float = 1e-3) -> tuple[DomainClassifier, dict[str, Any]]:
    """Train a :class:`DomainClassifier` on uint8 sim (label 0) and real (label 1) images, balanced batches, seeded.

    torch's global RNG is left as it was. Returns (the network in eval mode, {"train_steps", "train_images",
    "train_accuracy"})."""
    dev = torch.device(device)
    if len(sim) < 1 or len(real) < 1:
        raise ValueError("the domain classifier needs sim and real images")
    rng = np.random.default_rng(seed)
    half = max(1, batch_size // 2)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        net = DomainClassifier().to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        labels = torch.cat([torch.zeros(half), torch.ones(half)]).to(dev)
        net.train()
        for _ in range(steps):
            batch = np.concatenate([sim[rng.integers(0, len(sim), half)], real[rng.integers(0, len(real), half)]])
            loss = nn.functional.binary_cross_entropy_with_logits(net(to_gan_input(torch.as_tensor(batch).to(dev))), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    p_sim, p_real = classifier_real_probability(net, sim, 64, dev), classifier_real_probability(net, real, 64, dev)
    acc = float(((p_sim < 0.5).sum() + (p_real >= 0.5).sum()) / (len(sim) + len(real)))
    return net, {"train_steps": int(steps), "train_images": int(len(sim) + len(real)), "train_accuracy": acc}


@torch.no_grad()
def classifier_real_probability(net: DomainClassifier, images: np.ndarray, batch_size: int, device) -> np.ndarray:
    dev = torch.device(device)
    out = [torch.sigmoid(net(to_gan_input(torch.as_tensor(images[i:i + batch_size]).to(dev)))).cpu().numpy()
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out).astype(np.float64)


@torch.no_grad()
def image_features(kind: str, net: nn.Module, images: np.ndarray, batch_size: int, device) -> np.ndarray:
    """(N, D) float64 features of uint8 images: the domain classifier's penultimate layer or Q_sim's pooled tower."""
    dev = torch.device(device)
    out = []
    for i in range(0, len(images), batch_size):
        batch = torch.as_tensor(images[i:i + batch_size]).to(dev)
        if kind == "domain_classifier":
            f = net.features(to_gan_input(batch))  # type: ignore[operator]
        else:
            f = net.encode(batch).float().mean(dim=(2, 3))  # type: ignore[operator]
        out.append(f.float().cpu().numpy())
    return np.concatenate(out).astype(np.float64)


class ObjectSegmenter(nn.Module):
    """A small fully convolutional net: the per-pixel logit that a pixel shows a graspable object.

    Two resolutions (full and half) joined by a skip connection: enough to find objects of a few pixels,
    too small to memorise a dataset. Input float (B, 3, H, W) in [-1, 1]; output (B, H, W) logits."""

    def __init__(self, width: int = 16):
        super().__init__()
        c = width
        self.full = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True))
        self.coarse = nn.Sequential(nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(2 * c, 2 * c, 3, padding=2, dilation=2), nn.ReLU(inplace=True))
        self.out = nn.Sequential(nn.Conv2d(3 * c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.full(x)
        h = nn.functional.interpolate(self.coarse(f), size=f.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(torch.cat([f, h], 1)).squeeze(1)


_SEGMENTERS: dict[tuple, ObjectSegmenter] = {}
"""Trained segmenters of this process by (training data digest, settings): an experiment scoring many runs on the
same renders trains each once."""


def train_object_segmenter(images: np.ndarray, masks: np.ndarray, steps: int = 1000, seed: int = 0, device="cpu",
                           batch_size: int = 16, lr: float = 2e-3, pos_weight: float = 3.0) -> ObjectSegmenter:
    """Train an :class:`ObjectSegmenter` on uint8 (N, H, W, 3) renders and their (N, H, W) bool object masks.

    Seeded (torch's global RNG is left as it was) and cached in this process. Object pixels weigh ``pos_weight``
    times a background pixel (objects cover a few percent of an image). On 200 64 px real renders of Grasp-v0,
    1000 steps reach IoU 0.70 on held-out renders (400: 0.44-0.50; 2000: 0.71). Returns the network in eval mode."""
    if len(images) < 1 or images.shape[:3] != masks.shape:
        raise ValueError(f"the object segmenter needs images and masks of the same (N, H, W); got {images.shape} and {masks.shape}")
    import hashlib

    digest = hashlib.sha1(np.ascontiguousarray(images).tobytes() + np.packbits(masks).tobytes()).hexdigest()
    key = (digest, images.shape, steps, seed, str(device), batch_size, lr, pos_weight)
    if key in _SEGMENTERS:
        return _SEGMENTERS[key]
    dev = torch.device(device)
    rng = np.random.default_rng(seed)
    weight = torch.tensor(float(pos_weight), device=dev)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        net = ObjectSegmenter().to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        net.train()
        for _ in range(steps):
            idx = rng.integers(0, len(images), batch_size)
            x = to_gan_input(torch.as_tensor(images[idx]).to(dev))
            target = torch.as_tensor(masks[idx]).to(dev).float()
            loss = nn.functional.binary_cross_entropy_with_logits(net(x), target, pos_weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    _SEGMENTERS[key] = net.eval()
    return net


@torch.no_grad()
def segment_objects(net: ObjectSegmenter, images: np.ndarray, batch_size: int, device) -> np.ndarray:
    """(N, H, W) bool: the pixels ``net`` takes for objects in uint8 images."""
    dev = torch.device(device)
    out = [(net(to_gan_input(torch.as_tensor(images[i:i + batch_size]).to(dev))) > 0).cpu().numpy()
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros(images.shape[:3], bool)


def mask_scores(pred: np.ndarray, target: np.ndarray, resamples: int = 0, seed: int = 0) -> dict[str, float | None]:
    """IoU, precision and recall of predicted (N, H, W) object pixels against the true ones, pooled over all images.

    ``resamples`` > 0 adds ``iou_low`` / ``iou_high``: the 2.5 and 97.5 percentiles of the pooled IoU over that many
    bootstrap resamples of the images (seeded)."""
    pred, target = np.asarray(pred, bool), np.asarray(target, bool)
    inter, union = float((pred & target).sum()), float((pred | target).sum())
    n_pred, n_true = float(pred.sum()), float(target.sum())
    out: dict[str, float | None] = {"iou": inter / union if union else None, "precision": inter / n_pred if n_pred else None,
                                    "recall": inter / n_true if n_true else None}
    if resamples > 0:
        per_inter = (pred & target).reshape(len(pred), -1).sum(1).astype(np.float64)
        per_union = (pred | target).reshape(len(pred), -1).sum(1).astype(np.float64)
        idx = np.random.default_rng(seed).integers(0, len(pred), (resamples, len(pred)))
        u = per_union[idx].sum(1)
        ious = per_inter[idx].sum(1)[u > 0] / u[u > 0]
        out["iou_low"], out["iou_high"] = ((float(np.percentile(ious, 2.5)), float(np.percentile(ious, 97.5)))
                                           if len(ious) else (None, None))
    return out


def object_segmentation(train: dict, data: dict, gx: np.ndarray, fy: np.ndarray | None, steps: int, seed: int,
                        batch_size: int, device) -> dict[str, Any]:
    """Content preservation by segmentation (the idea of pix2pix / CycleGAN's "FCN score"): an
    :class:`ObjectSegmenter` trained on real renders and their object masks (``train``: separate episodes) marks
    the objects in G(x); scored against the paired real render's mask. The same segmenter on y itself is the
    ceiling, on x the untranslated floor. F(y) is scored by a second segmenter trained on sim renders. Each IoU
    comes with a 95% bootstrap interval over the evaluation's images (``iou_low``, ``iou_high``).
    Unlike object-pixel PSNR, this does not ask G to guess an unseen object's real colour and texture, only to
    draw a real-looking object where the sim render has one."""
    seg_real = train_object_segmenter(train["real"], train["real_mask"], steps, seed, device)

    def scores(net: ObjectSegmenter, images: np.ndarray, mask: np.ndarray) -> dict:
        return mask_scores(segment_objects(net, images, batch_size, device), mask, resamples=1000, seed=seed)

    out: dict[str, Any] = {
        "g_vs_real": scores(seg_real, gx, data["real_mask"]),
        "real": scores(seg_real, data["real"], data["real_mask"]),
        "sim_vs_real": scores(seg_real, data["sim"], data["real_mask"]),
    }
    if fy is not None:
        seg_sim = train_object_segmenter(train["sim"], train["sim_mask"], steps, seed + 1, device)
        out["f_vs_sim"] = scores(seg_sim, fy, data["sim_mask"])
        out["sim"] = scores(seg_sim, data["sim"], data["sim_mask"])
    out.update(train_images=int(len(train["real"])), train_steps=int(steps))
    return out


def _finite_or_none(v: float) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


# ===================================================================================== evaluation
def evaluate_translation(checkpoint: str | Path, episodes: int = 20, objects: str = "test", seed: int = DEFAULT_SEED,
                         device: str = "auto", *, features: Literal["domain_classifier", "q_sim"] = "domain_classifier",
                         classifier_steps: int = 300, classifier_episodes: int = 20, batch_size: int = 64,
                         kid_subsets: int = 100, kid_subset_size: int = 0, segmenter_steps: int = 1000) -> dict[str, Any]:
    """Score a checkpoint's translation against paired sim/real renders of ``episodes`` scripted episodes.

    See the module docstring for what is measured. Keys of the result: checkpoint, method, step, env, env_kwargs,
    objects, seed, episodes, images, image_size, g_vs_real, f_vs_sim (None for method gan), sim_vs_real (each
    {psnr, ssim, psnr_object, ssim_object, object_images}), q_consistency (None without Q-networks),
    object_segmentation (:func:`object_segmentation`, trained on the classifier's episodes for ``segmenter_steps``
    steps; None when 0), own_fid and
    own_kid ({g_vs_real, sim_vs_real[, f_vs_sim]}; KID as {mean, std}), kid_subset_size, feature_network (which
    network, its feature size, training and the note that the values are not Inception FID/KID) and seconds.

    ``kid_subset_size`` 0 takes half the images (at most 1000): KID's std is the spread over random subsets,
    so subsets as large as the whole set would all be that set and give a std of 0.
    """
    t0 = time.monotonic()
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if features not in FEATURE_NETWORKS:
        raise ValueError(f"features must be one of {FEATURE_NETWORKS}, got {features!r}")
    if features == "domain_classifier" and (classifier_steps < 1 or classifier_episodes < 1):
        raise ValueError(f"classifier_steps and classifier_episodes must be >= 1 (got {classifier_steps}, {classifier_episodes})")
    if segmenter_steps < 0 or (segmenter_steps > 0 and classifier_episodes < 1):
        raise ValueError(f"segmenter_steps must be >= 0 and needs classifier_episodes >= 1 (got {segmenter_steps}, {classifier_episodes})")
    dev = pick_device(device)
    model = load_translation_model(checkpoint, dev)
    if features == "q_sim" and model.q_sim is None:
        raise ValueError(f"{model.path}: a {model.method!r} checkpoint has no Q_sim; use the domain_classifier features (--features domain_classifier)")
    env = make_paired_env(model, objects)
    try:
        env_kwargs = dict(getattr(env.unwrapped, "config_dict", lambda: {})())
        data = paired_renders(env, [seed + i for i in range(episodes)], masks=True)
        train_data = (paired_renders(env, [seed + CLASSIFIER_SEED_OFFSET + i for i in range(classifier_episodes)], masks=segmenter_steps > 0)
                      if features == "domain_classifier" or segmenter_steps > 0 else None)
        cls_data = train_data if features == "domain_classifier" else None
    finally:
        env.close()
    x, y = data["sim"], data["real"]
    if len(x) < 2:
        raise ValueError(f"{episodes} episode(s) gave {len(x)} image(s); FID/KID need at least 2: play more episodes")
    gx = translate_array(model.G, x, batch_size, dev)
    fy = translate_array(model.F, y, batch_size, dev) if model.F is not None else None

    result: dict[str, Any] = {
        "checkpoint": str(model.path), "method": model.method, "step": model.step, "env": str(model.config.get("env")),
        "env_kwargs": env_kwargs, "objects": objects, "seed": seed, "episodes": episodes, "images": int(len(x)),
        "image_size": list(x.shape[1:3]),
        "g_vs_real": image_metrics(gx, y, data["real_mask"]),
        "f_vs_sim": image_metrics(fy, x, data["sim_mask"]) if fy is not None else None,
        "sim_vs_real": image_metrics(x, y, data["real_mask"]),
        "q_consistency": (q_consistency(model, data, gx, fy, batch_size, dev)
                          if model.q_sim is not None and model.q_real is not None else None),
        "object_segmentation": (object_segmentation(train_data, data, gx, fy, segmenter_steps, seed % 2**31, batch_size, dev)
                                if train_data is not None and segmenter_steps > 0 else None),
    }

    if features == "domain_classifier":
        assert cls_data is not None
        net, info = train_domain_classifier(cls_data["sim"], cls_data["real"], classifier_steps, seed % 2**31, dev)
        p_x, p_y = classifier_real_probability(net, x, batch_size, dev), classifier_real_probability(net, y, batch_size, dev)
        feature_info = {
            "network": "domain_classifier",
            "description": "small conv encoder trained on the fly to tell sim renders from real renders apart, on paired "
                           f"renders of {classifier_episodes} separate scripted episodes; features: its penultimate layer "
                           "(global-average-pooled conv encoder output)",
            "dim": net.head.in_features, "episodes": classifier_episodes, **info,
            "eval_accuracy": float(((p_x < 0.5).sum() + (p_y >= 0.5).sum()) / (2 * len(x))),
            "g_classified_real": float((classifier_real_probability(net, gx, batch_size, dev) >= 0.5).mean()),
        }
        if fy is not None:
            feature_info["f_classified_sim"] = float((classifier_real_probability(net, fy, batch_size, dev) < 0.5).mean())
        feat_net: nn.Module = net
    else:
        assert model.q_sim is not None
        feat_net = model.q_sim
        feature_info = {"network": "q_sim", "description": "the checkpoint's own Q_sim image tower (GraspQNet.encode), "
                        "global-average-pooled", "dim": int(model.q_sim.cfg.head_channels)}
    feature_info["note"] = FEATURE_NOTE

    def raw(images: np.ndarray) -> np.ndarray:
        return image_features(features, feat_net, images, batch_size, dev)

    # one fixed per-dimension standardisation (mean 0, std 1 over reference renders) so values do not scale with
    # how large the network's activations happen to be: the classifier's training renders, or for Q_sim the
    # evaluation's own x and y
    f_x, f_y = raw(x), raw(y)
    ref = np.concatenate([raw(cls_data["sim"]), raw(cls_data["real"])]) if cls_data is not None else np.concatenate([f_x, f_y])
    mu, sd = ref.mean(0), ref.std(0)
    sd = np.where(sd > 1e-6, sd, 1.0)
    feature_info["standardized_on"] = "the classifier's training renders" if cls_data is not None else "the evaluation's x and y renders"

    def feats(images: np.ndarray) -> np.ndarray:
        return (raw(images) - mu) / sd

    f_x, f_y, f_gx = (f_x - mu) / sd, (f_y - mu) / sd, feats(gx)
    kid_size = kid_subset_size if kid_subset_size > 0 else min(1000, max(2, len(x) // 2))
    kid_args = dict(subsets=kid_subsets, subset_size=kid_size, seed=seed % 2**32)
    pairs = {"g_vs_real": (f_gx, f_y), "sim_vs_real": (f_x, f_y)}
    if fy is not None:
        pairs["f_vs_sim"] = (feats(fy), f_x)
    result["own_fid"] = {k: _finite_or_none(frechet_distance(a, b)) for k, (a, b) in pairs.items()}
    result["own_kid"] = {k: dict(zip(("mean", "std"), kid(a, b, **kid_args))) for k, (a, b) in pairs.items()}
    result["kid_subset_size"] = min(kid_size, len(x))
    result["feature_network"] = feature_info
    result["seconds"] = time.monotonic() - t0
    return result


def format_table(r: dict[str, Any]) -> str:
    """A readable summary of :func:`evaluate_translation`'s result."""

    def num(v, fmt=".3f") -> str:
        return "-" if v is None else format(v, fmt)

    lines = [f"{r['checkpoint']} ({r['method']}, step {r['step']}): {r['images']} paired {r['image_size'][1]}x{r['image_size'][0]} "
             f"renders from {r['episodes']} scripted {r['objects']}-object episodes of {r['env']}", ""]
    lines.append(f"{'':24s}{'PSNR dB':>9s}{'SSIM':>8s}{'PSNR obj':>10s}{'SSIM obj':>10s}")
    for key, label in (("g_vs_real", "G(x) vs real"), ("f_vs_sim", "F(y) vs sim"), ("sim_vs_real", "x vs real (no transl.)")):
        m = r.get(key)
        if m is not None:
            lines.append(f"{label:24s}{num(m['psnr'], '.2f'):>9s}{num(m['ssim']):>8s}{num(m['psnr_object'], '.2f'):>10s}"
                         f"{num(m['ssim_object']):>10s}")
    q = r.get("q_consistency")
    if q is not None:
        lines += ["", f"Q-consistency |Q_sim(x,a) - Q_real(G(x),a)|: {q['mean_abs_diff']:.4f} (max {q['max_abs_diff']:.4f}); "
                      f"|Q_real(y,a) - Q_real(G(x),a)|: {q['real_pair_mean_abs_diff']:.4f}; over {q['pairs']} logged actions"]
    seg = r.get("object_segmentation")
    if seg is not None:
        lines += ["", f"object segmentation (segmenter trained on {seg['train_images']} separate renders): IoU / precision / recall"]
        for key, label in (("g_vs_real", "G(x), real segmenter"), ("real", "y itself (ceiling)"), ("sim_vs_real", "x (no transl.)"),
                           ("f_vs_sim", "F(y), sim segmenter"), ("sim", "x itself (ceiling)")):
            m = seg.get(key)
            if m is not None:
                ci = f"  [{num(m.get('iou_low'))}, {num(m.get('iou_high'))}]" if m.get("iou_low") is not None else ""
                lines.append(f"{label:24s}{num(m['iou']):>8s}{num(m['precision']):>8s}{num(m['recall']):>8s}{ci}")
    fn = r["feature_network"]
    lines += ["", f"{fn['note']} (features: {fn['network']}, {fn['dim']}-d)"]
    for key, label in (("g_vs_real", "G(x) vs real"), ("f_vs_sim", "F(y) vs sim"), ("sim_vs_real", "x vs real (no transl.)")):
        if key in r["own_fid"]:
            k = r["own_kid"][key]
            lines.append(f"{label:24s} FID {num(r['own_fid'][key], '.4f'):>10s}   KID {k['mean']:.5f} +- {k['std']:.5f}")
    return "\n".join(lines)
