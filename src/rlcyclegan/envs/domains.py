"""Visual domains: how the same physical state is drawn.

A :class:`Look` is everything about an image that is not physics: colours and materials of every
geom, which lights shine and how, shadows, the camera's pose offset and field of view, and the
camera's image-formation model. The env keeps one look per domain and applies it right before
rendering, so any state can be rendered in any domain (``render_domains``).

- ``sim``: the canonical simulator look. Flat colours, one directional light plus a weak
  headlight, no textures, no shadows, no camera effects.
- ``randomized``: domain randomization, resampled every episode: random colours, a random
  procedural texture on each surface (70%), light direction, colour and intensity, shadows on or
  off, camera pose jitter (about 2 cm, 3 degrees of field of view) and random camera effects.
- ``real``: a stand-in for a real robot camera, fixed for an env and structurally different from
  ``sim``: wood-grain table, speckled plastic bin, brushed-metal gripper, textured objects in a
  muted household palette, a warm shadow-casting key light with specular highlights plus a cool
  fill light, and a camera model (white balance, gamma and contrast, vignetting, lens blur, shot
  and read noise, JPEG compression). It is a function of :class:`RealStyle`, made from a seed:
  ``real_style=0`` is the canonical look; other seeds give other "real" cameras and scenes.
  The camera pose equals sim's (a calibrated simulator) unless ``real_camera_offset`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import mujoco
import numpy as np

from rlcyclegan.envs import textures as tx
from rlcyclegan.envs.camera import CameraModel
from rlcyclegan.envs.scene import (
    N_OBJECT_TEXTURES,
    N_RANDOM_TEXTURES,
    TEX_SIZE,
    Scene,
    look_at_quat,
    write_texture,
)
from rlcyclegan.envs.shapes import shape_colour

DOMAINS = ("sim", "randomized", "real")

# Sim: saturated, flat toy colours. Real: muted household colours. Disjoint on purpose.
SIM_PALETTE = np.array(
    [[0.9, 0.15, 0.15], [0.15, 0.75, 0.2], [0.2, 0.35, 0.95], [0.95, 0.85, 0.1], [0.85, 0.2, 0.85], [0.1, 0.85, 0.85]]
)
REAL_PALETTE = np.array(
    [[0.78, 0.72, 0.62], [0.55, 0.32, 0.22], [0.35, 0.42, 0.55], [0.92, 0.9, 0.86], [0.62, 0.58, 0.2],
     [0.3, 0.3, 0.32], [0.7, 0.45, 0.5], [0.45, 0.55, 0.42]]
)


@dataclass
class Look:
    """What a domain changes in the model/data right before rendering (see module docstring)."""

    geom_rgba: np.ndarray
    geom_matid: np.ndarray
    light_active: np.ndarray
    light_pos: np.ndarray  # relative to the active bin centre
    light_dir: np.ndarray
    light_diffuse: np.ndarray
    light_specular: np.ndarray
    light_castshadow: np.ndarray
    headlight_ambient: np.ndarray
    headlight_diffuse: np.ndarray
    shadows: bool = False
    cam_offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    target_offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    fovy_offset: float = 0.0
    camera_model: CameraModel | None = None

    def copy(self) -> "Look":
        return replace(self, **{k: v.copy() for k, v in self.__dict__.items() if isinstance(v, np.ndarray)})

    def camera_pose(self, base_pos: np.ndarray, base_target: np.ndarray, base_fovy: float):
        """Camera (position, 3x3 rotation matrix, fovy) for this look given the calibrated pose."""
        pos = base_pos + self.cam_offset
        quat = look_at_quat(pos, base_target + self.target_offset)
        mat = np.zeros(9)
        mujoco.mju_quat2Mat(mat, quat)
        return pos, mat, base_fovy + self.fovy_offset

    def apply(self, scene: Scene, data: mujoco.MjData, origin: np.ndarray, camera) -> None:
        """Write this look into ``scene.model`` / ``data`` (rendering fields only, never physics)."""
        m, ids = scene.model, scene.ids
        m.geom_rgba[:] = self.geom_rgba
        m.geom_matid[:] = self.geom_matid
        m.light_active[:] = self.light_active
        m.light_diffuse[:] = self.light_diffuse
        m.light_specular[:] = self.light_specular
        m.light_castshadow[:] = self.light_castshadow
        data.light_xpos[:] = self.light_pos + origin
        data.light_xdir[:] = self.light_dir / np.linalg.norm(self.light_dir, axis=1, keepdims=True)
        m.vis.headlight.ambient[:] = self.headlight_ambient
        m.vis.headlight.diffuse[:] = self.headlight_diffuse
        pos, mat, fovy = camera
        data.cam_xpos[ids.camera] = pos
        data.cam_xmat[ids.camera] = mat
        m.cam_fovy[ids.camera] = fovy


# --------------------------------------------------------------------------------------------
# sim


def sim_look(scene: Scene) -> Look:
    m, ids = scene.model, scene.ids
    rgba = np.tile(np.array([0.5, 0.5, 0.5, 1.0], np.float32), (m.ngeom, 1))
    rgba[ids.table_geom] = [0.72, 0.72, 0.7, 1]
    rgba[ids.bin_geoms] = [0.35, 0.45, 0.62, 1]
    rgba[ids.gripper_geoms] = [0.22, 0.22, 0.24, 1]
    rgba[ids.arm_geoms] = [0.95, 0.5, 0.1, 1]
    rgba[ids.arm_geoms[-1]] = [0.7, 0.7, 0.72, 1]  # wrist column
    nl = m.nlight
    active = np.zeros(nl, np.uint8)
    active[ids.lights["sim_light"]] = 1
    return Look(
        geom_rgba=rgba,
        geom_matid=np.full(m.ngeom, -1, np.int32),
        light_active=active,
        light_pos=np.array([[0, 0, 2.0], [0.5, -0.2, 1.1], [-1, 0.5, 1.5]]),
        light_dir=np.array([[0, 0.3, -1.0], [-0.45, 0.2, -1], [0.6, -0.3, -1]]),
        light_diffuse=np.tile([0.7, 0.7, 0.7], (nl, 1)).astype(np.float32),
        light_specular=np.zeros((nl, 3), np.float32),
        light_castshadow=np.zeros(nl, np.uint8),
        headlight_ambient=np.array([0.3, 0.3, 0.3], np.float32),
        headlight_diffuse=np.array([0.35, 0.35, 0.35], np.float32),
        shadows=False,
    )


def sim_object_look(look: Look, scene: Scene, slots: np.ndarray, shape_ids: np.ndarray, rng=None) -> None:
    for g, s in zip(scene.ids.slot_geoms[slots], shape_ids):
        look.geom_rgba[g, :3] = shape_colour(int(s), SIM_PALETTE)
        look.geom_rgba[g, 3] = 1.0
        look.geom_matid[g] = -1


# --------------------------------------------------------------------------------------------
# real


@dataclass(frozen=True)
class RealStyle:
    """Documented parameters of a `real` look. ``RealStyle.from_seed(0)`` is the canonical one."""

    seed: int = 0
    table_light: tuple = (0.78, 0.62, 0.45)
    table_dark: tuple = (0.52, 0.36, 0.22)
    bin_base: tuple = (0.46, 0.5, 0.52)
    bin_fleck: tuple = (0.75, 0.77, 0.78)
    arm_colour: tuple = (0.93, 0.93, 0.9)
    metal: tuple = (0.62, 0.63, 0.66)
    key_light_pos: tuple = (0.45, -0.25, 1.0)
    key_light_colour: tuple = (1.0, 0.9, 0.75)
    fill_light_colour: tuple = (0.22, 0.26, 0.34)
    headlight: float = 0.12
    camera: CameraModel = CameraModel(
        white_balance=(1.08, 1.0, 0.86),
        gamma=1.1,
        vignetting=0.35,
        blur_sigma=0.55,
        shot_noise=0.035,
        read_noise=0.008,
        jpeg_quality=70,
        contrast=1.12,
    )

    @staticmethod
    def from_seed(seed: int) -> "RealStyle":
        """Style 0 is canonical; other seeds perturb every parameter (another plausible camera/scene)."""
        if seed == 0:
            return RealStyle()
        rng = np.random.default_rng([9157, seed])
        jit = lambda c, s=0.12: tuple(np.clip(np.asarray(c) + rng.normal(0, s, 3), 0.05, 1.0))  # noqa: E731
        base = RealStyle()
        cam = base.camera
        return RealStyle(
            seed=seed,
            table_light=jit(base.table_light),
            table_dark=jit(base.table_dark),
            bin_base=jit(base.bin_base),
            bin_fleck=jit(base.bin_fleck),
            arm_colour=jit(base.arm_colour, 0.08),
            metal=jit(base.metal, 0.05),
            key_light_pos=tuple(np.asarray(base.key_light_pos) + rng.normal(0, 0.2, 3) * [1, 1, 0.3]),
            key_light_colour=jit(base.key_light_colour, 0.06),
            fill_light_colour=jit(base.fill_light_colour, 0.05),
            headlight=float(rng.uniform(0.05, 0.2)),
            camera=replace(
                cam,
                white_balance=tuple(np.clip(np.asarray(cam.white_balance) + rng.normal(0, 0.06, 3), 0.7, 1.3)),
                gamma=float(rng.uniform(0.9, 1.25)),
                vignetting=float(rng.uniform(0.15, 0.45)),
                blur_sigma=float(rng.uniform(0.3, 0.9)),
                shot_noise=float(rng.uniform(0.015, 0.05)),
                jpeg_quality=int(rng.integers(45, 90)),
                contrast=float(rng.uniform(0.95, 1.25)),
            ),
        )


def write_real_textures(scene: Scene, style: RealStyle) -> None:
    """Generate the `real` textures of a style into the model (call before creating a renderer)."""
    t, m = scene.ids.textures, scene.model
    rng = np.random.default_rng([4242, style.seed])
    c = lambda v: np.asarray(v, float)  # noqa: E731
    write_texture(m, t["t_table"], tx.wood(rng, TEX_SIZE, c(style.table_light), c(style.table_dark)))
    write_texture(m, t["t_bin"], tx.speckle(rng, TEX_SIZE, c(style.bin_base), c(style.bin_fleck), density=0.05))
    write_texture(m, t["t_metal"], tx.brushed(rng, TEX_SIZE, c(style.metal)))
    write_texture(m, t["t_arm"], tx.speckle(rng, TEX_SIZE, c(style.arm_colour), c(style.arm_colour) * 0.8, density=0.03))
    makers = (tx.stripes, tx.checker, tx.marble, tx.speckle)
    for k in range(N_OBJECT_TEXTURES):
        a = REAL_PALETTE[rng.integers(len(REAL_PALETTE))]
        b = np.clip(a * rng.uniform(0.4, 0.8) + rng.normal(0, 0.05, 3), 0, 1)
        write_texture(m, t[f"t_obj{k}"], makers[k % len(makers)](rng, TEX_SIZE, a, b))


def real_look(scene: Scene, style: RealStyle, camera_offset=(0.0, 0.0, 0.0, 0.0)) -> Look:
    m, ids = scene.model, scene.ids
    mat = ids.materials
    look = sim_look(scene)
    white = np.array([0.999, 0.999, 0.999, 1.0], np.float32)  # not the default grey: keeps tints
    look.geom_rgba[:] = white
    look.geom_matid[ids.table_geom] = mat["m_table"]
    look.geom_matid[ids.bin_geoms] = mat["m_bin"]
    look.geom_matid[ids.gripper_geoms] = mat["m_metal"]
    look.geom_rgba[ids.finger_geoms] = [0.3, 0.3, 0.32, 1]
    look.geom_matid[ids.arm_geoms] = mat["m_arm"]
    look.geom_matid[ids.arm_geoms[-1]] = mat["m_metal"]
    k, key, fill = ids.lights["sim_light"], ids.lights["key"], ids.lights["fill"]
    look.light_active[:] = 0
    look.light_active[[key, fill]] = 1
    look.light_pos[key] = style.key_light_pos
    look.light_dir[key] = -np.asarray(style.key_light_pos) + [0.0, 0.05, 0.0]
    look.light_diffuse[key] = style.key_light_colour
    look.light_specular[key] = [0.6, 0.6, 0.6]
    look.light_diffuse[fill] = style.fill_light_colour
    look.light_specular[fill] = [0.1, 0.1, 0.1]
    look.light_castshadow[key] = 1
    look.light_diffuse[k] = 0
    look.headlight_ambient[:] = style.headlight
    look.headlight_diffuse[:] = style.headlight
    look.shadows = True
    dx, dy, dz, dfov = camera_offset
    look.cam_offset = np.array([dx, dy, dz], float)
    look.fovy_offset = float(dfov)
    look.camera_model = style.camera
    return look


def real_object_look(look: Look, scene: Scene, slots: np.ndarray, shape_ids: np.ndarray, style: RealStyle) -> None:
    for g, s in zip(scene.ids.slot_geoms[slots], shape_ids):
        rng = np.random.default_rng([77, style.seed, int(s)])
        look.geom_matid[g] = scene.ids.materials[f"m_obj{rng.integers(N_OBJECT_TEXTURES)}"]
        tint = shape_colour(int(s), REAL_PALETTE) * 0.5 + 0.5  # textures carry the colour; tint varies it
        look.geom_rgba[g] = [*tint, 1.0]


# --------------------------------------------------------------------------------------------
# randomized


def randomized_look(scene: Scene, rng: np.random.Generator, slots: np.ndarray) -> Look:
    """A fresh domain-randomized look (call once per episode)."""
    m, ids = scene.model, scene.ids
    look = sim_look(scene)
    look.geom_rgba[:, :3] = rng.uniform(0.05, 1.0, size=(m.ngeom, 3))
    look.geom_rgba[:, 3] = 1.0

    def maybe_texture(geoms):
        if rng.random() < 0.7:
            look.geom_matid[geoms] = ids.materials[f"m_rand{rng.integers(N_RANDOM_TEXTURES)}"]

    maybe_texture([ids.table_geom])
    maybe_texture(ids.bin_geoms)
    maybe_texture(ids.arm_geoms)
    for g in ids.slot_geoms[slots]:
        maybe_texture([g])
    look.light_active[:] = 0
    use = rng.random(3) < [1.0, 0.5, 0.5]
    look.light_active[:] = use.astype(np.uint8)
    look.light_pos = look.light_pos + rng.normal(0, 0.3, size=look.light_pos.shape) * [1, 1, 0.2]
    look.light_dir = np.stack([-look.light_pos[:, 0], -look.light_pos[:, 1], -np.abs(look.light_pos[:, 2])], 1)
    look.light_dir += rng.normal(0, 0.2, size=look.light_dir.shape)
    look.light_diffuse = (rng.uniform(0.3, 1.0, size=(m.nlight, 1)) * rng.uniform(0.7, 1.0, size=(m.nlight, 3))).astype(np.float32)
    look.light_specular = rng.uniform(0.0, 0.5, size=(m.nlight, 3)).astype(np.float32)
    look.light_castshadow = (rng.random(m.nlight) < 0.5).astype(np.uint8)
    look.shadows = bool(rng.random() < 0.5)
    look.headlight_ambient[:] = rng.uniform(0.05, 0.4)
    look.headlight_diffuse[:] = rng.uniform(0.1, 0.5)
    look.cam_offset = rng.normal(0, 0.02, 3)
    look.target_offset = rng.normal(0, 0.02, 3)
    look.fovy_offset = float(rng.uniform(-3, 3))
    look.camera_model = CameraModel(
        white_balance=tuple(rng.uniform(0.85, 1.15, 3)),
        gamma=float(rng.uniform(0.85, 1.2)),
        blur_sigma=float(rng.uniform(0.0, 0.8)),
        shot_noise=float(rng.uniform(0.0, 0.04)),
        read_noise=float(rng.uniform(0.0, 0.015)),
        contrast=float(rng.uniform(0.85, 1.2)),
    )
    return look
