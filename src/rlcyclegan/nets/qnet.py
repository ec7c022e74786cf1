"""The vision Q-network of QT-Opt, scaled down for 64x64 images.

Shape of QT-Opt's grasping critic: a conv tower encodes the image into a feature map; the action
and the robot state are embedded by an MLP and broadcast-added to every position of that map;
more conv layers and an MLP head give one logit, and Q = sigmoid(logit) is in [0, 1].

The network is split so that CEM can reuse work: :meth:`GraspQNet.encode` runs the image tower
once per state, and :meth:`GraspQNet.head` scores any number of actions per encoded state
(``actions`` of shape (B, N, A) -> logits (B, N)).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class QNetConfig:
    """Architecture of :class:`GraspQNet` (stored in checkpoints; a mismatch is an error)."""

    image_size: int = 64
    """Side of the square input image; the tower halves it until the map is ``merge_size`` wide."""
    state_dim: int = 2
    """Size of the low-dimensional robot state vector."""
    action_dim: int = 6
    """Size of the action vector."""
    channels: int = 32
    """Channels of the first conv layers (doubled once, in the last tower stage)."""
    merge_size: int = 4
    """Side of the feature map the action embedding is added to (4 keeps CEM cheap on a CPU)."""
    head_channels: int = 32
    """Channels of the conv layers after the action merge."""
    hidden: int = 64
    """Width of the action/state embedding and of the MLP head."""
    head_layers: int = 0
    """Extra 3x3 conv layers at the merge resolution after the action merge (spatial reasoning per action)."""
    coords: bool = False
    """Append two pixel-coordinate channels to the image (CoordConv), which helps locating things."""
    norm: str = "none"
    """Normalisation after each conv of the image tower: "none", "batch" (QT-Opt used batch norm) or "group"."""
    head_pool: str = "flatten"
    """How the head reads the merged map: "flatten" (QT-Opt: a strided conv, then an MLP on the flattened
    map) or "max" (1x1 convs per cell, with a learned position embedding, then a max over cells: "is there
    a place where the gripper will be and an object is", which locates objects far more precisely)."""
    fourier: int = 0
    """Fourier features of the action and state before their embedding MLP: each value v also enters as
    sin(2^k pi v) and cos(2^k pi v) for k < fourier (0: the raw values only). An MLP on raw coordinates
    learns smooth functions of them; sharp ones, such as "the gripper will be within 1 cm of here", need these."""
    aux_outputs: int = 0
    """Extra linear outputs read from the head's last hidden layer (beside the Q logit), trained by an
    auxiliary loss such as ``QTOptConfig.aux_weight``'s; they shape the shared features and are never
    used for acting. 0: none (the state dict is then exactly the plain critic's)."""
    action_gates: tuple[int, ...] = ()
    """Action dimensions that act as on/off switches, in priority order (Grasp-v0: ``(4, 5)`` = close,
    terminate). The network sees :func:`canonical_action`: each gate as +-1, and once a gate is on,
    every later dimension that the env then ignores is blanked. Empty: the raw action."""
    input_blur: float = 0.0
    """Sigma (pixels) of a fixed Gaussian low-pass applied to every input image before the tower, in training
    and acting alike (0: none). It has no parameters, so weights move between networks that differ only here.
    It removes what a real camera and a generator render differently at the finest scale (sensor noise,
    JPEG blocks, lens blur) from every domain at once, where random blur and noise in training only teach
    the network to tolerate them (``scripts/diagnostics/real_look_ablation.py``)."""

    def __post_init__(self):
        object.__setattr__(self, "action_gates", tuple(int(i) for i in self.action_gates))
        if not 0.0 <= self.input_blur <= 8.0:
            raise ValueError(f"QNetConfig.input_blur must be in [0, 8] pixels, got {self.input_blur}")
        bad = [i for i in self.action_gates if not 0 <= i < self.action_dim]
        if bad or len(set(self.action_gates)) != len(self.action_gates):
            raise ValueError(f"QNetConfig.action_gates {self.action_gates}: each must be a distinct index in [0, {self.action_dim})")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["action_gates"] = list(self.action_gates)
        return d


QNET_NORMS = ("none", "batch", "group")
PARAMETER_FREE_FIELDS = ("input_blur",)
"""QNetConfig fields that change no weight: a state dict fits networks that differ only in these."""


def gaussian_kernel_1d(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian taps of ``sigma`` pixels, radius ceil(2 sigma)."""
    radius = max(1, math.ceil(2.0 * sigma))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    return taps / taps.sum()


def fixed_blur(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of float (B, C, H, W) ``x`` with 1-D ``taps``, edges replicated."""
    c, r = x.shape[1], (taps.numel() - 1) // 2
    k = taps.to(x.dtype)
    x = nn.functional.pad(x, (r, r, r, r), mode="replicate")
    x = nn.functional.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return nn.functional.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
QNET_HEAD_POOLS = ("flatten", "max")


def _norm(kind: str, channels: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(channels)]
    if kind == "group":
        return [nn.GroupNorm(max(1, channels // 8), channels)]
    return []


def canonical_action(action: torch.Tensor, gates: tuple[int, ...]) -> torch.Tensor:
    """What the env executes, as the Q-network should see it: ``action`` (..., A) with each gate
    dimension replaced by +1 (on, > 0) or -1 (off), and, once a gate is on, the continuous dimensions
    and the later gates (which the env then ignores) set to 0 and -1.

    Without this, CEM can score a close action whose unused move dimensions take values never seen
    with a close in the data, and the network extrapolates (it overestimated such grasps by 0.4 on
    Grasp-v0). Gates are in priority order: the first one on decides what happens.
    """
    if not gates:
        return action
    idx = list(gates)
    on = action[..., idx] > 0  # (..., G)
    # A gate takes effect only when no earlier gate is on.
    earlier = torch.cumsum(on.to(torch.int32), dim=-1) - on.to(torch.int32) > 0
    effective = on & ~earlier
    any_on = effective.any(dim=-1, keepdim=True)
    out = torch.where(any_on, torch.zeros_like(action), action)
    out[..., idx] = torch.where(effective, 1.0, -1.0).to(action.dtype)
    return out


def _check_power_of_two_ratio(image_size: int, merge_size: int) -> int:
    ratio = image_size // merge_size
    if image_size % merge_size or ratio < 2 or ratio & (ratio - 1):
        raise ValueError(
            f"QNetConfig: image_size ({image_size}) must be merge_size ({merge_size}) times a power of two >= 2"
        )
    return ratio.bit_length() - 1


class GraspQNet(nn.Module):
    """Q(s, a) = sigmoid(head(encode(image), state, action)). Images are uint8 NHWC or float NCHW."""

    def __init__(self, cfg: QNetConfig = QNetConfig()):
        super().__init__()
        self.cfg = cfg
        halvings = _check_power_of_two_ratio(cfg.image_size, cfg.merge_size)
        if cfg.norm not in QNET_NORMS:
            raise ValueError(f"QNetConfig.norm must be one of {QNET_NORMS}, got {cfg.norm!r}")
        if cfg.head_pool not in QNET_HEAD_POOLS:
            raise ValueError(f"QNetConfig.head_pool must be one of {QNET_HEAD_POOLS}, got {cfg.head_pool!r}")
        c = cfg.channels
        layers: list[nn.Module] = [nn.Conv2d(5 if cfg.coords else 3, c, 5, stride=2, padding=2), *_norm(cfg.norm, c), nn.ReLU(inplace=True)]
        ch = c
        for i in range(halvings - 1):
            out = 2 * c if i == halvings - 2 else c
            layers += [nn.Conv2d(ch, out, 3, padding=1), *_norm(cfg.norm, out), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            ch = out
        layers += [nn.Conv2d(ch, cfg.head_channels, 3, padding=1)]
        self.tower = nn.Sequential(*layers)
        if cfg.fourier < 0:
            raise ValueError(f"QNetConfig.fourier must be >= 0, got {cfg.fourier}")
        sa_dim = (cfg.action_dim + cfg.state_dim) * (1 + 2 * cfg.fourier)
        taps = gaussian_kernel_1d(cfg.input_blur) if cfg.input_blur > 0 else torch.zeros(0)
        self.register_buffer("blur_taps", taps, persistent=False)
        self.register_buffer("freqs", torch.pi * 2.0 ** torch.arange(cfg.fourier, dtype=torch.float32), persistent=False)
        self.embed = nn.Sequential(
            nn.Linear(sa_dim, cfg.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.hidden, cfg.head_channels),
        )
        h = cfg.head_channels
        head: list[nn.Module] = [nn.ReLU(), nn.Conv2d(h, h, 1), nn.ReLU(inplace=True)]
        for _ in range(cfg.head_layers):
            head += [nn.Conv2d(h, h, 3, padding=1), nn.ReLU(inplace=True)]
        if cfg.head_pool == "max":
            # A position embedding tells each cell where it is, so the per-cell convs can compare that place
            # with where the action takes the gripper (given by the embedding added to every cell).
            self.merge_pos = nn.Parameter(torch.zeros(1, h, cfg.merge_size, cfg.merge_size))
            nn.init.normal_(self.merge_pos, std=0.5)
            head += [nn.Conv2d(h, h, 1), nn.ReLU(inplace=True)]
            self.head_convs = nn.Sequential(*head)
            self.mlp = nn.Sequential(nn.Linear(h, cfg.hidden), nn.ReLU(inplace=True), nn.Linear(cfg.hidden, 1))
        else:
            self.merge_pos = None
            head += [nn.Conv2d(h, h, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            self.head_convs = nn.Sequential(*head)
            side = (cfg.merge_size + 1) // 2
            self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(h * side * side, cfg.hidden), nn.ReLU(inplace=True), nn.Linear(cfg.hidden, 1))
        if cfg.aux_outputs < 0:
            raise ValueError(f"QNetConfig.aux_outputs must be >= 0, got {cfg.aux_outputs}")
        self.aux = nn.Linear(cfg.hidden, cfg.aux_outputs) if cfg.aux_outputs else None

    # ------------------------------------------------------------------------------------------
    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-0.5, 0.5]; float NCHW passes through."""
        shape = tuple(image.shape)
        if image.dtype == torch.uint8 and image.ndim == 4:
            image = image.permute(0, 3, 1, 2).float().div_(255.0).sub_(0.5)
        if image.ndim != 4 or image.shape[1] != 3 or image.shape[-1] != self.cfg.image_size or image.shape[-2] != self.cfg.image_size:
            s = self.cfg.image_size
            raise ValueError(f"GraspQNet: image has shape {shape}, expected (B, {s}, {s}, 3) uint8 or (B, 3, {s}, {s}) float")
        return image.contiguous(memory_format=torch.channels_last)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Image tower, once per state: (B, ...) image -> (B, C, m, m) feature map."""
        x = self.preprocess(image)
        if self.cfg.input_blur > 0:
            x = fixed_blur(x, self.blur_taps).contiguous(memory_format=torch.channels_last)
        if self.cfg.coords:
            b, _, h, w = x.shape
            ys = torch.linspace(-0.5, 0.5, h, device=x.device, dtype=x.dtype)[:, None].expand(h, w)
            xs = torch.linspace(-0.5, 0.5, w, device=x.device, dtype=x.dtype)[None, :].expand(h, w)
            x = torch.cat([x, torch.stack([ys, xs]).expand(b, 2, h, w)], dim=1).contiguous(memory_format=torch.channels_last)
        return self.tower(x)

    def head(self, features: torch.Tensor, state: torch.Tensor, action: torch.Tensor,
             with_aux: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits for N actions per state: features (B, C, m, m), state (B, S), action (B, N, A) -> (B, N).

        ``action`` may also be (B, A) (one action per state), giving logits (B,). With ``with_aux``
        (needs ``aux_outputs`` > 0) also the auxiliary outputs, (B, N, aux_outputs) (or (B, aux_outputs)).
        """
        if with_aux and self.aux is None:
            raise ValueError("GraspQNet.head(with_aux=True): this network has no auxiliary outputs (QNetConfig.aux_outputs=0)")
        single = action.ndim == 2
        if single:
            action = action[:, None]
        b, n, _ = action.shape
        action = canonical_action(action, self.cfg.action_gates)
        sa = torch.cat([action, state[:, None, :].expand(b, n, state.shape[-1]).to(action.dtype)], dim=-1)
        if self.cfg.fourier:
            ang = sa[..., None] * self.freqs.to(sa.dtype)  # (B, N, D, K)
            sa = torch.cat([sa, ang.sin().flatten(-2), ang.cos().flatten(-2)], dim=-1)
        emb = self.embed(sa)  # (B, N, C)
        c, m = features.shape[1], features.shape[-1]
        if self.merge_pos is not None:
            features = features + self.merge_pos.to(features.dtype)
        x = features[:, None] + emb[..., None, None].to(features.dtype)  # (B, N, C, m, m)
        x = self.head_convs(x.reshape(b * n, c, m, m))
        if self.merge_pos is not None:
            x = x.amax(dim=(-2, -1))
        hidden = self.mlp[:-1](x)
        logits = self.mlp[-1](hidden).reshape(b, n)
        if not with_aux:
            return logits[:, 0] if single else logits
        aux = self.aux(hidden).reshape(b, n, -1)  # type: ignore[misc]
        return (logits[:, 0], aux[:, 0]) if single else (logits, aux)

    def forward(self, image: torch.Tensor, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Logits of Q(s, a); apply ``torch.sigmoid`` for Q in [0, 1]."""
        return self.head(self.encode(image), state, action)


QNET_PRESETS: dict[str, dict] = {
    # CPU cost at 64x64, batch 64, 2 threads: small ~50 ms and default ~125 ms per TD step
    # (target CEM + forward/backward); large is meant for a GPU.
    "small": dict(channels=16, head_channels=16, hidden=32),
    "default": dict(),
    # three 3x3 convs per action at 8x8 after the merge (closer to QT-Opt's deep post-merge stack); ~1.5x default cost
    "deep": dict(merge_size=8, head_channels=16, head_layers=2),
    "large": dict(channels=64, head_channels=64, hidden=128, merge_size=8),
    # actions merged at 8x8, per-cell 1x1 convs and a max over cells (see QNetConfig.head_pool)
    "spatial": dict(merge_size=8, head_pool="max", head_channels=16),
}


def make_qnet(name: str = "default", **overrides) -> GraspQNet:
    """String-keyed factory: ``make_qnet("default", image_size=128)``."""
    if name not in QNET_PRESETS:
        raise ValueError(f"unknown Q-network {name!r}; expected one of {sorted(QNET_PRESETS)}")
    return GraspQNet(QNetConfig(**{**QNET_PRESETS[name], **overrides}))
