"""The MuJoCo grasping scene: table, bin(s), a Cartesian parallel-jaw gripper with a visible arm,
object slots, lights, the over-the-shoulder camera, and the textures every visual domain uses.

The model is compiled once per (number of bins, object split) and cached per process. Episodes
never recompile: each object slot holds a mesh geom whose mesh is swapped at reset by writing the
precomputed per-shape geometry and inertia (see :class:`ShapeTable`) into the model arrays.

Frame conventions (metres): z up, the (first) bin centred at x = 0, y = 0; the bin floor's top
surface is at ``BIN_FLOOR_Z``; the robot base stands in front of the bin at ``y = BASE_Y``; the
camera looks over the robot's shoulder into the bin. The gripper's tool centre point (TCP) is the
fingertip level between the jaws; the hand's x, y, z slide joints are the TCP position.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import mujoco
import numpy as np

from rlcyclegan.envs import shapes as shp
from rlcyclegan.envs import textures as tx

BIN_HALF = 0.15  # inner half-width of a bin
BIN_WALL_H = 0.06
BIN_WALL_T = 0.01
BIN_FLOOR_Z = 0.01  # top of the bin's floor plate
BIN_SPACING = 0.36  # centre distance between adjacent bins (MultiBinGrasp)
BASE_Y = -0.42  # robot base, in front of the bin
SHOULDER_H = 0.30
UPPER_ARM = 0.30
FOREARM = 0.28
WRIST_ABOVE_TCP = 0.17  # top of the wrist column above the TCP
FINGER_OPEN = 0.040  # inner face of each jaw from the centre when open (8 cm opening)
FINGER_TRAVEL = 0.050  # jaw servo target when closing: past contact, so the grip force saturates
TEX_SIZE = 128
N_OBJECT_TEXTURES = 8
N_RANDOM_TEXTURES = 16
CAMERA_POS = np.array([0.24, -0.58, 0.80])  # relative to the active bin centre (over the shoulder)
CAMERA_TARGET = np.array([0.0, 0.01, 0.04])
# Framed so the bin fills the image (env v3): at 32 degrees (v2) the bin took a quarter of a 64 px
# frame and objects were 2-4 pixels across, too few for a Q-network to tell a grasp from a miss.
CAMERA_FOVY = 23.0


def look_at_quat(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Quaternion (w, x, y, z) of a MuJoCo camera at ``pos`` looking at ``target`` (z up)."""
    f = np.asarray(target, float) - np.asarray(pos, float)
    f /= np.linalg.norm(f)
    x = np.cross(f, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(x, f)
    mat = np.stack([x, y, -f], axis=1)  # camera axes as columns; the camera looks along -z
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.reshape(-1))
    return quat


@dataclass
class SceneIds:
    """Indices into the compiled model that the env and the looks need."""

    slot_bodies: np.ndarray
    slot_geoms: np.ndarray
    slot_qpos: np.ndarray  # qpos address of each slot's free joint
    slot_dof: np.ndarray
    hand_qpos: np.ndarray  # x, y, z, yaw
    hand_dof: np.ndarray
    finger_qpos: np.ndarray  # left, right
    act_hand: np.ndarray  # actuators x, y, z, yaw
    act_fingers: np.ndarray
    finger_geoms: np.ndarray
    gripper_geoms: np.ndarray
    arm_geoms: np.ndarray
    arm_mocap: dict[str, int]
    bin_geoms: np.ndarray
    table_geom: int
    floor_geoms: np.ndarray
    camera: int
    lights: dict[str, int]
    textures: dict[str, int]
    materials: dict[str, int]


@dataclass
class ShapeTable:
    """Per-shape values copied into a slot when its mesh is swapped (rows follow ``shape_ids``)."""

    shape_ids: np.ndarray
    mesh_ids: np.ndarray
    geom_size: np.ndarray
    geom_rbound: np.ndarray
    geom_aabb: np.ndarray
    geom_pos: np.ndarray
    geom_quat: np.ndarray
    body_mass: np.ndarray
    body_inertia: np.ndarray
    body_ipos: np.ndarray
    body_iquat: np.ndarray
    friction: np.ndarray
    vertices: list[np.ndarray]  # in the body frame

    def row(self, shape_id: int) -> int:
        return int(np.searchsorted(self.shape_ids, shape_id))


@dataclass
class Scene:
    model: mujoco.MjModel
    ids: SceneIds
    shapes: ShapeTable
    num_bins: int
    num_slots: int
    bin_centres: np.ndarray  # (num_bins, 2)


def _fmt(v) -> str:
    return " ".join(f"{float(x):.6g}" for x in np.atleast_1d(v))


def _bin_xml(i: int, cx: float) -> str:
    h, t, wh, fz = BIN_HALF, BIN_WALL_T, BIN_WALL_H, BIN_FLOOR_Z
    walls = [
        (f"bin{i}_floor", (cx, 0, fz / 2 - 0.0005), (h + t, h + t, fz / 2 - 0.0005)),
        (f"bin{i}_wall_n", (cx, h + t / 2, fz + wh / 2), (h + t, t / 2, wh / 2)),
        (f"bin{i}_wall_s", (cx, -h - t / 2, fz + wh / 2), (h + t, t / 2, wh / 2)),
        (f"bin{i}_wall_e", (cx + h + t / 2, 0, fz + wh / 2), (t / 2, h, wh / 2)),
        (f"bin{i}_wall_w", (cx - h - t / 2, 0, fz + wh / 2), (t / 2, h, wh / 2)),
    ]
    return "\n".join(
        f'<geom name="{n}" type="box" pos="{_fmt(p)}" size="{_fmt(s)}" class="bin"'
        + (' contype="0" conaffinity="0"/>' if n.endswith("floor") else "/>")
        for n, p, s in walls
    )


def _scene_xml(num_bins: int, shape_ids: np.ndarray, num_slots: int) -> str:
    centres = (np.arange(num_bins) - (num_bins - 1) / 2) * BIN_SPACING
    x_lo, x_hi = centres[0] - BIN_HALF, centres[-1] + BIN_HALF
    table_half_x = max(0.6, (x_hi - x_lo) / 2 + 0.35)
    meshes = "\n".join(
        f'<mesh name="shape_{i}" vertex="{_fmt(shp.make_shape(int(i)).vertices.reshape(-1))}"/>' for i in shape_ids
    )
    textures = [f'<texture name="{n}" type="2d" builtin="flat" width="{TEX_SIZE}" height="{TEX_SIZE}" rgb1="1 1 1"/>'
                for n in _texture_names()]
    materials = [
        '<material name="m_table" texture="t_table" texrepeat="3 3" texuniform="true" specular="0.2" shininess="0.2"/>',
        '<material name="m_bin" texture="t_bin" texrepeat="4 4" texuniform="true" specular="0.5" shininess="0.6" reflectance="0.05"/>',
        '<material name="m_metal" texture="t_metal" texrepeat="2 2" texuniform="true" specular="0.9" shininess="0.9" reflectance="0.1"/>',
        '<material name="m_arm" texture="t_arm" texrepeat="2 2" texuniform="true" specular="0.6" shininess="0.7"/>',
        '<material name="m_plain" specular="0.3" shininess="0.3"/>',
    ]
    materials += [f'<material name="m_obj{k}" texture="t_obj{k}" texrepeat="6 6" texuniform="true" specular="0.5" shininess="0.5"/>'
                  for k in range(N_OBJECT_TEXTURES)]
    materials += [f'<material name="m_rand{k}" texture="t_rand{k}" texrepeat="3 3" texuniform="true" specular="0.3" shininess="0.4"/>'
                  for k in range(N_RANDOM_TEXTURES)]
    slots = []
    for k in range(num_slots):
        slots.append(
            f'<body name="obj{k}" pos="{_fmt([0.0, 3.0 + 0.2 * k, 0.5])}">'
            f'<freejoint name="obj{k}_free"/>'
            f'<geom name="obj{k}_geom" type="mesh" mesh="shape_{shape_ids[0]}" class="object"/></body>'
        )
    bins = "\n".join(_bin_xml(i, c) for i, c in enumerate(centres))
    fz = BIN_FLOOR_Z
    hand_x_range = f"{x_lo + 0.005:.4f} {x_hi - 0.005:.4f}"
    return f"""
<mujoco model="rlcyclegan_grasp">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="0.005" integrator="implicitfast" cone="pyramidal" impratio="1" iterations="20" ls_iterations="8">
    <flag warmstart="enable" sleep="enable"/>
  </option>
  <size memory="32M"/>
  <visual>
    <global offwidth="512" offheight="512"/>
    <quality shadowsize="1024" offsamples="0"/>
    <headlight ambient="0.25 0.25 0.25" diffuse="0.55 0.55 0.55" specular="0 0 0" active="1"/>
    <map znear="0.05" zfar="8"/>
  </visual>
  <asset>
    {chr(10).join(textures)}
    {chr(10).join(materials)}
    {meshes}
  </asset>
  <default>
    <default class="bin"><geom rgba="0.55 0.57 0.6 1" friction="0.6 0.005 0.0001" group="0"/></default>
    <default class="object"><geom condim="3" friction="0.9 0.01 0.0001" solref="0.004 1" group="2" rgba="0.8 0.3 0.3 1"/></default>
    <default class="finger"><geom type="box" condim="4" friction="1.5 0.02 0.0001" solref="0.004 1" rgba="0.2 0.2 0.22 1" group="1"/></default>
    <default class="visual"><geom contype="0" conaffinity="0" group="1" rgba="0.9 0.45 0.1 1"/></default>
  </default>
  <worldbody>
    <light name="sim_light" directional="true" pos="0 0 2" dir="0 0.3 -1" diffuse="0.7 0.7 0.7" specular="0 0 0" castshadow="false"/>
    <light name="key" pos="0.5 -0.2 1.1" dir="-0.45 0.2 -1" diffuse="0.9 0.85 0.75" specular="0.5 0.5 0.5" castshadow="true" cutoff="55" exponent="4" active="false"/>
    <light name="fill" directional="true" pos="-1 0.5 1.5" dir="0.6 -0.3 -1" diffuse="0.25 0.28 0.32" specular="0.1 0.1 0.1" castshadow="false" active="false"/>
    <camera name="main" pos="{_fmt(CAMERA_POS)}" quat="{_fmt(look_at_quat(CAMERA_POS, CAMERA_TARGET))}" fovy="{CAMERA_FOVY}"/>
    <geom name="floor_plane" type="plane" pos="0 0 {fz}" size="0 0 1" rgba="0 0 0 0" group="3" friction="0.6 0.005 0.0001"/>
    <geom name="table" contype="0" conaffinity="0" type="box" pos="{_fmt([(x_lo + x_hi) / 2, -0.1, -0.02])}" size="{_fmt([table_half_x, 0.8, 0.02])}" rgba="0.62 0.62 0.6 1" friction="0.6 0.005 0.0001"/>
    {bins}
    <body name="pedestal" mocap="true" pos="0 {BASE_Y} 0">
      <geom name="pedestal_geom" type="cylinder" size="0.055 {SHOULDER_H / 2 - 0.03}" pos="0 0 {SHOULDER_H / 2 - 0.03}" class="visual"/>
    </body>
    <body name="arm_shoulder" mocap="true" pos="0 {BASE_Y} {SHOULDER_H}">
      <geom name="shoulder_geom" type="sphere" size="0.05" class="visual"/>
    </body>
    <body name="arm_upper" mocap="true" pos="0 {BASE_Y} {SHOULDER_H + UPPER_ARM / 2}">
      <geom name="upper_geom" type="capsule" size="0.036 {UPPER_ARM / 2}" class="visual"/>
    </body>
    <body name="arm_elbow" mocap="true" pos="0 {BASE_Y} {SHOULDER_H + UPPER_ARM}">
      <geom name="elbow_geom" type="sphere" size="0.04" class="visual"/>
    </body>
    <body name="arm_fore" mocap="true" pos="0 {BASE_Y} {SHOULDER_H + UPPER_ARM}">
      <geom name="fore_geom" type="capsule" size="0.03 {FOREARM / 2}" class="visual"/>
    </body>
    <body name="hand" pos="0 0 0" gravcomp="1">
      <joint name="hand_x" type="slide" axis="1 0 0" range="{hand_x_range}" damping="5"/>
      <joint name="hand_y" type="slide" axis="0 1 0" range="{-BIN_HALF + 0.005:.4f} {BIN_HALF - 0.005:.4f}" damping="5"/>
      <joint name="hand_z" type="slide" axis="0 0 1" range="{fz + 0.003:.4f} 0.40" damping="5"/>
      <joint name="hand_yaw" type="hinge" axis="0 0 1" range="-1.75 1.75" armature="0.01" damping="0.2"/>
      <geom name="palm" type="box" pos="0 0 0.077" size="0.054 0.018 0.012" mass="0.3" rgba="0.25 0.25 0.27 1" group="1"/>
      <geom name="wrist" type="cylinder" pos="0 0 0.13" size="0.024 0.041" mass="0.1" rgba="0.7 0.7 0.72 1" group="1" contype="0" conaffinity="0"/>
      <body name="finger_l" pos="{-(FINGER_OPEN + 0.006)} 0 0" gravcomp="1">
        <joint name="finger_l" type="slide" axis="1 0 0" range="0 {FINGER_TRAVEL}" damping="2"/>
        <geom name="finger_l_geom" class="finger" pos="0 0 0.0335" size="0.006 0.013 0.0335" mass="0.05"/>
      </body>
      <body name="finger_r" pos="{FINGER_OPEN + 0.006} 0 0" gravcomp="1">
        <joint name="finger_r" type="slide" axis="-1 0 0" range="0 {FINGER_TRAVEL}" damping="2"/>
        <geom name="finger_r_geom" class="finger" pos="0 0 0.0335" size="0.006 0.013 0.0335" mass="0.05"/>
      </body>
    </body>
    {chr(10).join(slots)}
  </worldbody>
  <contact>
    <exclude body1="hand" body2="finger_l"/>
    <exclude body1="hand" body2="finger_r"/>
  </contact>
  <actuator>
    <position name="act_x" joint="hand_x" kp="1500" dampratio="1" ctrlrange="{hand_x_range}" forcerange="-60 60"/>
    <position name="act_y" joint="hand_y" kp="1500" dampratio="1" ctrlrange="{-BIN_HALF + 0.005:.4f} {BIN_HALF - 0.005:.4f}" forcerange="-60 60"/>
    <position name="act_z" joint="hand_z" kp="20000" dampratio="1" ctrlrange="{fz + 0.003:.4f} 0.40" forcerange="-400 400"/>
    <position name="act_yaw" joint="hand_yaw" kp="20" dampratio="1" ctrlrange="-1.75 1.75" forcerange="-5 5"/>
    <position name="act_finger_l" joint="finger_l" kp="1000" dampratio="1" ctrlrange="0 {FINGER_TRAVEL}" forcerange="-15 15"/>
    <position name="act_finger_r" joint="finger_r" kp="1000" dampratio="1" ctrlrange="0 {FINGER_TRAVEL}" forcerange="-15 15"/>
  </actuator>
</mujoco>
"""


def _texture_names() -> list[str]:
    names = ["t_table", "t_bin", "t_metal", "t_arm"]
    names += [f"t_obj{k}" for k in range(N_OBJECT_TEXTURES)]
    names += [f"t_rand{k}" for k in range(N_RANDOM_TEXTURES)]
    return names


def _name2id(model: mujoco.MjModel, kind: mujoco.mjtObj, name: str) -> int:
    idx = mujoco.mj_name2id(model, kind, name)
    if idx < 0:
        raise KeyError(f"scene has no {kind.name} named {name!r}")
    return idx


def _collect_ids(model: mujoco.MjModel, num_bins: int, num_slots: int) -> SceneIds:
    G, B, J, A = mujoco.mjtObj.mjOBJ_GEOM, mujoco.mjtObj.mjOBJ_BODY, mujoco.mjtObj.mjOBJ_JOINT, mujoco.mjtObj.mjOBJ_ACTUATOR
    gid = lambda n: _name2id(model, G, n)  # noqa: E731
    slot_bodies = np.array([_name2id(model, B, f"obj{k}") for k in range(num_slots)])
    slot_joints = [_name2id(model, J, f"obj{k}_free") for k in range(num_slots)]
    hand_joints = [_name2id(model, J, n) for n in ("hand_x", "hand_y", "hand_z", "hand_yaw")]
    finger_joints = [_name2id(model, J, n) for n in ("finger_l", "finger_r")]
    bin_geoms = [gid(f"bin{i}_{p}") for i in range(num_bins) for p in ("floor", "wall_n", "wall_s", "wall_e", "wall_w")]
    return SceneIds(
        slot_bodies=slot_bodies,
        slot_geoms=np.array([gid(f"obj{k}_geom") for k in range(num_slots)]),
        slot_qpos=np.array([model.jnt_qposadr[j] for j in slot_joints]),
        slot_dof=np.array([model.jnt_dofadr[j] for j in slot_joints]),
        hand_qpos=np.array([model.jnt_qposadr[j] for j in hand_joints]),
        hand_dof=np.array([model.jnt_dofadr[j] for j in hand_joints]),
        finger_qpos=np.array([model.jnt_qposadr[j] for j in finger_joints]),
        act_hand=np.array([_name2id(model, A, n) for n in ("act_x", "act_y", "act_z", "act_yaw")]),
        act_fingers=np.array([_name2id(model, A, n) for n in ("act_finger_l", "act_finger_r")]),
        finger_geoms=np.array([gid("finger_l_geom"), gid("finger_r_geom")]),
        gripper_geoms=np.array([gid("palm"), gid("finger_l_geom"), gid("finger_r_geom")]),
        arm_geoms=np.array([gid(n) for n in ("pedestal_geom", "shoulder_geom", "upper_geom", "elbow_geom", "fore_geom", "wrist")]),
        arm_mocap={n: int(model.body_mocapid[_name2id(model, B, n)]) for n in ("pedestal", "arm_shoulder", "arm_upper", "arm_elbow", "arm_fore")},
        bin_geoms=np.array(bin_geoms),
        table_geom=gid("table"),
        floor_geoms=np.array([gid(f"bin{i}_floor") for i in range(num_bins)]),
        camera=_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "main"),
        lights={n: _name2id(model, mujoco.mjtObj.mjOBJ_LIGHT, n) for n in ("sim_light", "key", "fill")},
        textures={n: _name2id(model, mujoco.mjtObj.mjOBJ_TEXTURE, n) for n in _texture_names()},
        materials={mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_MATERIAL, i): i for i in range(model.nmat)},
    )


@lru_cache(maxsize=4)
def _shape_table(split: str) -> ShapeTable:
    """Compile every shape of the split once in a catalogue model and read back what a slot needs."""
    ids = shp.split_ids(split)
    bodies = "\n".join(
        f'<body name="b{i}"><freejoint/><geom type="mesh" mesh="shape_{i}" mass="{shp.make_shape(int(i)).mass:.6g}"/></body>'
        for i in ids
    )
    meshes = "\n".join(f'<mesh name="shape_{i}" vertex="{_fmt(shp.make_shape(int(i)).vertices.reshape(-1))}"/>' for i in ids)
    cat = mujoco.MjModel.from_xml_string(f"<mujoco><asset>{meshes}</asset><worldbody>{bodies}</worldbody></mujoco>")
    geoms = np.arange(len(ids))  # one geom per body, in order
    bodies_idx = geoms + 1
    return ShapeTable(
        shape_ids=ids,
        mesh_ids=cat.geom_dataid[geoms].copy(),
        geom_size=cat.geom_size[geoms].copy(),
        geom_rbound=cat.geom_rbound[geoms].copy(),
        geom_aabb=cat.geom_aabb[geoms].copy(),
        geom_pos=cat.geom_pos[geoms].copy(),
        geom_quat=cat.geom_quat[geoms].copy(),
        body_mass=cat.body_mass[bodies_idx].copy(),
        body_inertia=cat.body_inertia[bodies_idx].copy(),
        body_ipos=cat.body_ipos[bodies_idx].copy(),
        body_iquat=cat.body_iquat[bodies_idx].copy(),
        friction=np.array([shp.make_shape(int(i)).friction for i in ids]),
        vertices=[shp.make_shape(int(i)).vertices for i in ids],
    )


def _fill_textures(model: mujoco.MjModel, ids: SceneIds) -> None:
    """Write the procedural texture images into the compiled model (before any renderer exists).

    Textures used by the `real` look come from the real-style seed at render time (see
    ``domains.RealStyle``); here every texture gets a neutral default so the model is valid alone.
    """
    rng = np.random.default_rng(7)
    for name, tid in ids.textures.items():
        if name.startswith("t_rand"):
            write_texture(model, tid, tx.random_texture(rng, TEX_SIZE))
        else:
            write_texture(model, tid, np.full((TEX_SIZE, TEX_SIZE, 3), 200, np.uint8))


def write_texture(model: mujoco.MjModel, tex_id: int, image: np.ndarray) -> None:
    """Overwrite texture ``tex_id`` with an RGB uint8 image of the texture's size."""
    h, w, nc = int(model.tex_height[tex_id]), int(model.tex_width[tex_id]), int(model.tex_nchannel[tex_id])
    if image.shape != (h, w, 3) or nc != 3:
        raise ValueError(f"texture {tex_id} expects a ({h}, {w}, 3) image, got {image.shape} (nchannel {nc})")
    adr = int(model.tex_adr[tex_id])
    model.tex_data[adr : adr + h * w * 3] = image.reshape(-1)


@lru_cache(maxsize=8)
def _compiled(num_bins: int, split: str, num_slots: int) -> tuple[mujoco.MjModel, ShapeTable]:
    table = _shape_table(split)
    model = mujoco.MjModel.from_xml_string(_scene_xml(num_bins, table.shape_ids, num_slots))
    # Mesh ids in the scene follow the asset order, which is the same as the catalogue's.
    return model, table


def build_scene(num_bins: int = 1, split: str = "train", num_slots: int = 10) -> Scene:
    """A fresh copy of the compiled scene (each env owns and mutates its own model)."""
    base, table = _compiled(num_bins, split, num_slots)
    model = _copy_model(base)
    ids = _collect_ids(model, num_bins, num_slots)
    _fill_textures(model, ids)
    centres = (np.arange(num_bins) - (num_bins - 1) / 2) * BIN_SPACING
    return Scene(
        model=model,
        ids=ids,
        shapes=table,
        num_bins=num_bins,
        num_slots=num_slots,
        bin_centres=np.stack([centres, np.zeros(num_bins)], axis=1),
    )


def _copy_model(model: mujoco.MjModel) -> mujoco.MjModel:
    import copy

    return copy.deepcopy(model)
