"""Vision-based bin grasping in MuJoCo, with QT-Opt's action space and several visual domains.

``rlcyclegan/Grasp-v0``: one bin in front of the robot (the paper's Robot 1).
``rlcyclegan/MultiBinGrasp-v0``: three adjacent bins; each episode the robot base stands in front
of a random bin and the base and camera poses are perturbed (the paper's Robot 2).

Action ``Box(-1, 1, (6,))``: ``[dx, dy, dz, dtheta, close, terminate]``. The first four are
scaled by ``MAX_XY_STEP`` (5 cm), ``MAX_Z_STEP`` (5 cm) and ``MAX_YAW_STEP`` (pi/8) and move the
gripper's target relative to where it is, clipped to the bin's workspace. Values outside [-1, 1]
are clipped; NaN/inf or a wrong shape raise ``ValueError``. ``close > 0`` runs a scripted
close-and-lift (close the jaws, lift to ``LIFT_HEIGHT``) and ends the episode; ``terminate > 0``
ends it without grasping; otherwise the episode is truncated after ``max_steps`` steps.

Observation ``Dict(image=Box(0, 255, (H, W, 3), uint8), state=Box(...))``. With ``state="height"``
(default, QT-Opt's robot state) state = ``[gripper_closed (0 or 1), gripper height above the bin
floor (m)]``; with ``state="pose"`` the gripper's pose from the robot's own joint readings is added:
``[closed, height, x, y, yaw]`` with x, y relative to the centre of the bin in front of the robot in
units of ``WORKSPACE_HALF`` (so in [-1, 1]) and yaw in units of pi/2 (in [-1, 1]).

Reward: ``1.0`` when, at the end of a grasp, an object's centre of mass is more than
``SUCCESS_HEIGHT`` (10 cm) above the bin floor (the bin walls are 7 cm high), else ``0.0``;
``step_penalty`` (default 0) is subtracted from every step's reward. ``info["success"]`` is
always present.

Domains (``domain="sim"|"randomized"|"real"``, see :mod:`rlcyclegan.envs.domains`) change only the
image, except that ``real`` also carries a mild dynamics gap (object friction x0.8, mass x1.25),
as a real robot would. ``env.unwrapped.render_domains([...])`` draws the current state in any
domains with object masks, for paired evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from rlcyclegan.envs import domains as dom
from rlcyclegan.envs import scene as sc
from rlcyclegan.envs.shapes import SPLITS, split_ids

ENV_VERSION = 3
"""Bumped whenever the scene, physics or looks change what a seed produces (recorded in episode files)."""

MAX_XY_STEP = 0.05
MAX_Z_STEP = 0.05
MAX_YAW_STEP = np.pi / 8
CONTROL_SUBSTEPS = 20  # x 5 ms = 0.1 s of physics per action
LIFT_HEIGHT = 0.25  # TCP height above the bin floor at the end of a grasp
LIFT_SUBSTEPS = 48  # the lift takes 0.24 s of physics
SUCCESS_HEIGHT = 0.10
WORKSPACE_HALF = 0.135  # TCP x/y range around the active bin's centre
MAX_HEIGHT = 0.30  # TCP height limit above the bin floor
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 512
MAX_OBJECTS = 10
PRIVILEGED_DIM = 2 + 2 * MAX_OBJECTS
"""Length of ``info["privileged"]``: gripper x, y, then x, y of up to MAX_OBJECTS objects (+inf-padded)."""
AUX_DISTANCE_CAP = 0.10
"""Metres: the auxiliary distance target is capped here (and divided by it, so targets are in [0, 1])."""
REAL_FRICTION_SCALE = 0.8
REAL_MASS_SCALE = 1.25
STATE_MODES = ("height", "pose")
_PARK = np.array([0.0, 3.0, 0.5])  # unused object slots wait here, out of view, floating


@dataclass(frozen=True)
class EnvConfig:
    """Every parameter of a grasp env (also what episode files record)."""

    domain: str = "sim"
    objects: str = "train"
    num_objects: int = 5
    image_size: int = 64
    max_steps: int = 15
    step_penalty: float = 0.0
    real_style: int = 0
    real_camera_offset: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    num_bins: int = 1
    base_bin: str | int = "random"
    distractors_per_bin: int = 2
    base_jitter: float = 0.0
    state: str = "height"
    aux_distance_caps: tuple[float, ...] = (AUX_DISTANCE_CAP,)


class GraspEnv(gym.Env):
    """See the module docstring. Keyword arguments are the fields of :class:`EnvConfig`:

    - ``domain``: ``"sim"``, ``"randomized"`` or ``"real"``.
    - ``objects``: ``"train"`` or ``"test"`` (unseen shapes), or ``"all"``.
    - ``num_objects``: objects in the (active) bin, 1-10.
    - ``image_size``: square image side in pixels, 16-512.
    - ``max_steps``: step limit per episode.
    - ``step_penalty``: subtracted from every step's reward (QT-Opt used a small one; default 0).
    - ``real_style``: seed of the `real` look (0 = canonical).
    - ``real_camera_offset``: ``(dx, dy, dz, dfovy)`` metres/degrees added to the `real` camera
      (default zeros: the real camera is calibrated to sim's and images align pixel for pixel).
    - ``num_bins``, ``base_bin``, ``distractors_per_bin``, ``base_jitter``: multi-bin layout (the
      robot stands at bin ``base_bin``, or a random one each episode; the other bins hold
      ``distractors_per_bin`` objects each; base and camera are displaced by up to ``base_jitter`` m).
    - ``state``: ``"height"`` (``[closed, height]``, as QT-Opt) or ``"pose"`` (adds the gripper's
      x, y and yaw, as a robot reads them from its joints; see the module docstring).
    - ``aux_distance_caps``: metres; one auxiliary target per cap (:meth:`auxiliary_targets`), default
      ``(0.10,)``. Adding a small cap such as 0.025 gives a second target that resolves the last
      centimetres before a grasp.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    action_gates = (4, 5)
    """Action dimensions that are on/off switches, in priority order (close, then terminate); when one is
    on, the move dimensions are ignored. Learners may read this to canonicalise actions."""
    privileged_dim = PRIVILEGED_DIM
    """Length of ``info["privileged"]`` (see :meth:`privileged_state`)."""

    def __init__(self, render_mode: str | None = None, **kwargs: Any):
        unknown = set(kwargs) - set(EnvConfig.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown GraspEnv argument(s): {sorted(unknown)}")
        for key in ("real_camera_offset", "aux_distance_caps"):
            if key in kwargs:
                kwargs[key] = tuple(float(v) for v in np.atleast_1d(kwargs[key]))
        cfg = EnvConfig(**kwargs)
        _validate(cfg)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.cfg = cfg
        self.render_mode = render_mode
        n_slots = cfg.num_objects if cfg.num_bins == 1 else cfg.num_objects + (cfg.num_bins - 1) * cfg.distractors_per_bin
        self.scene = sc.build_scene(cfg.num_bins, cfg.objects, max(n_slots, 1))
        self.model = self.scene.model
        self.data = mujoco.MjData(self.model)
        self._split_ids = split_ids(cfg.objects)
        self._ids = self.scene.ids
        self._default_dyn = (self.model.geom_friction.copy(), self.model.body_mass.copy())

        self._style = dom.RealStyle.from_seed(cfg.real_style)
        dom.write_real_textures(self.scene, self._style)
        self._looks: dict[str, dom.Look] = {
            "sim": dom.sim_look(self.scene),
            "real": dom.real_look(self.scene, self._style, cfg.real_camera_offset),
        }
        self._looks["randomized"] = self._looks["sim"].copy()
        self._renderer: mujoco.Renderer | None = None

        s = cfg.image_size
        lo, hi = [0.0, 0.0], [1.0, 0.5]
        if cfg.state == "pose":
            lo, hi = lo + [-1.0, -1.0, -1.2], hi + [1.0, 1.0, 1.2]
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (s, s, 3), np.uint8),
                "state": spaces.Box(np.array(lo, np.float32), np.array(hi, np.float32), dtype=np.float32),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (6,), np.float32)

        self._active_slots = np.zeros(0, int)
        self._shape_ids = np.zeros(0, int)
        self._origin = np.zeros(3)
        self._base = np.array([0.0, sc.BASE_Y, 0.0])
        self._cam_base = (sc.CAMERA_POS.copy(), sc.CAMERA_TARGET.copy())
        self._steps = 0
        self._episode_seed = 0
        self._closed = False
        self._done = True
        self._last_obs: dict[str, np.ndarray] | None = None
        self._cam_cache: dict = {}

    # ------------------------------------------------------------------ gym API

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        self._episode_seed = int(rng.integers(2**31))
        m, d, cfg = self.model, self.data, self.cfg
        mujoco.mj_resetData(m, d)

        # Robot placement (multi-bin: in front of a random bin, jittered).
        bin_idx = 0
        if cfg.num_bins > 1:
            bin_idx = int(rng.integers(cfg.num_bins)) if cfg.base_bin == "random" else int(cfg.base_bin)
        cx = self.scene.bin_centres[bin_idx, 0]
        self._origin = np.array([cx, 0.0, 0.0])
        jitter = rng.uniform(-cfg.base_jitter, cfg.base_jitter, size=3) * [1, 1, 0] if cfg.base_jitter else np.zeros(3)
        self._base = np.array([cx, sc.BASE_Y, 0.0]) + jitter
        self._cam_base = (self._origin + sc.CAMERA_POS + jitter, self._origin + sc.CAMERA_TARGET)

        # Objects: choose shapes, swap them into slots, drop them into the bins.
        bins = [bin_idx] * cfg.num_objects
        if cfg.num_bins > 1:
            for b in range(cfg.num_bins):
                if b != bin_idx:
                    bins += [b] * cfg.distractors_per_bin
        n = len(bins)
        self._shape_ids = rng.choice(self._split_ids, size=n, replace=False)
        self._active_slots = np.arange(cfg.num_objects)
        self._load_shapes(self._shape_ids)
        self._place_objects(rng, np.asarray(bins))

        # Gripper: random pose above the bin, jaws open.
        h = sc.BIN_FLOOR_Z
        tcp = np.array([cx + rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), h + rng.uniform(0.2, 0.26)])
        yaw = rng.uniform(-np.pi / 2, np.pi / 2)
        d.qpos[self._ids.hand_qpos] = [*tcp, yaw]
        d.ctrl[self._ids.act_hand] = [*tcp, yaw]
        d.ctrl[self._ids.act_fingers] = 0.0
        mujoco.mj_forward(m, d)
        mujoco.mj_step(m, d, nstep=24)  # let the objects settle (0.12 s)

        # Looks that depend on the episode.
        slots = np.arange(n)
        dom.sim_object_look(self._looks["sim"], self.scene, slots, self._shape_ids)
        dom.real_object_look(self._looks["real"], self.scene, slots, self._shape_ids, self._style)
        if cfg.domain == "randomized" or options and options.get("randomize_look", False):
            self._looks["randomized"] = dom.randomized_look(self.scene, np.random.default_rng(self._episode_seed), slots)

        self._cam_cache = {}
        self._steps = 0
        self._closed = False
        self._done = False
        obs = self._observe()
        return obs, {"success": False, "shape_ids": [int(s) for s in self._shape_ids[: cfg.num_objects]],
                     "privileged": self.privileged_state()}

    def step(self, action):
        if self._done:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        a = self._check_action(action)
        self._steps += 1
        success = False
        terminated = False
        if a[4] > 0:
            success = self._close_and_lift()
            terminated = True
        elif a[5] > 0:
            terminated = True
        else:
            self._move(a)
        truncated = not terminated and self._steps >= self.cfg.max_steps
        self._done = terminated or truncated
        reward = float(success) - self.cfg.step_penalty
        obs = self._observe()
        info = {"success": bool(success), "privileged": self.privileged_state()}
        if terminated and a[4] > 0:
            info["grasped_shape_id"] = self._lifted_shape()
        return obs, reward, terminated, truncated, info

    def render(self):
        if self.render_mode == "rgb_array":
            return None if self._last_obs is None else self._last_obs["image"].copy()
        return None

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ------------------------------------------------------------------ public helpers

    def privileged_state(self) -> np.ndarray:
        """Simulator truth a real robot does not have, for auxiliary losses in sim (``info["privileged"]``).

        ``(PRIVILEGED_DIM,)`` float32: the gripper's x, y, then the x, y of each object in the active bin,
        all relative to that bin's centre in units of ``WORKSPACE_HALF`` (the frame of the pose state),
        padded to ``MAX_OBJECTS`` objects with +inf (an absent object is infinitely far away; NaN is kept
        for "unknown", and would also make equal states compare unequal).
        """
        out = np.full(PRIVILEGED_DIM, np.inf, np.float32)
        out[:2] = (self.tcp[:2] - self._origin[:2]) / WORKSPACE_HALF
        pos = (self.object_positions[:MAX_OBJECTS, :2] - self._origin[:2]) / WORKSPACE_HALF
        out[2 : 2 + 2 * len(pos)] = pos.reshape(-1)
        return out

    def auxiliary_targets(self, privileged: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Auxiliary targets of ``(state, action)`` pairs from the state's privileged vector:
        :func:`aux_distance_targets` with this env's ``aux_distance_caps`` (one target per cap)."""
        return aux_distance_targets(privileged, actions, self.cfg.aux_distance_caps)

    branch_actions = (np.array([0.0, 0.0, 0.0, 0.0, 1.0, -1.0], np.float32),)
    """Actions worth trying from every visited state with :meth:`branch` (a grasp: its outcome is the
    one thing a grasping Q-function must judge from the image)."""

    def branch(self, action) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """What ``step(action)`` would return from the current state, without taking the step.

        The simulator is copied, stepped and restored, so the episode goes on exactly as if this had
        not been called (same physics, same camera noise). Collectors use it to record, from every
        state they visit, the outcome of a grasp there: a counterfactual one-step episode.
        """
        if self._done:
            raise RuntimeError("branch() called on a finished episode: call reset() first")
        saved = mujoco.MjData(self.model)
        mujoco.mj_copyData(saved, self.model, self.data)
        flags = (self._steps, self._closed, self._done, self._last_obs)
        try:
            return self.step(action)
        finally:
            mujoco.mj_copyData(self.data, self.model, saved)
            self._steps, self._closed, self._done, self._last_obs = flags

    def config_dict(self) -> dict[str, Any]:
        """All parameters as a JSON-serialisable dict."""
        out = dict(self.cfg.__dict__)
        out["real_camera_offset"] = list(out["real_camera_offset"])
        out["env_version"] = ENV_VERSION
        return out

    def render_domains(self, domains=("sim", "real"), masks: bool = True) -> dict[str, dict[str, np.ndarray]]:
        """Render the *current* state in each domain: ``{domain: {"image", "object_mask"}}``.

        Images are what this env would observe in that domain at this step (same camera noise
        stream), so ``render_domains(["real"])`` in a real env equals its own observation.
        ``object_mask`` marks pixels showing graspable objects of the active bin (the arm and
        gripper occlude them as in the image).
        """
        out = {}
        for domain in domains:
            if domain not in dom.DOMAINS:
                raise ValueError(f"unknown domain {domain!r}; expected one of {dom.DOMAINS}")
            if domain == "randomized" and self.cfg.domain != "randomized":
                self._looks["randomized"] = dom.randomized_look(
                    self.scene, np.random.default_rng(self._episode_seed), np.arange(len(self._shape_ids))
                )
            item = {"image": self._render(domain)}
            if masks:
                item["object_mask"] = self._object_mask(domain)
            out[domain] = item
        return out

    @property
    def object_positions(self) -> np.ndarray:
        """World positions (n, 3) of the objects in the active bin (for scripted policies)."""
        return self.data.xpos[self._ids.slot_bodies[self._active_slots]].copy()

    def object_vertices(self, i: int) -> np.ndarray:
        """World-frame vertices of active object ``i`` (for scripted grasp planning)."""
        body = self._ids.slot_bodies[self._active_slots[i]]
        verts = self.scene.shapes.vertices[self.scene.shapes.row(int(self._shape_ids[i]))]
        rot = self.data.xmat[body].reshape(3, 3)
        return verts @ rot.T + self.data.xpos[body]

    @property
    def tcp(self) -> np.ndarray:
        """Gripper pose ``[x, y, z, yaw]`` (z in world frame; the bin floor is at ``BIN_FLOOR_Z``)."""
        return self.data.qpos[self._ids.hand_qpos].copy()

    @property
    def workspace(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the TCP target ``[x, y, z, yaw]``."""
        cx = self._origin[0]
        h = sc.BIN_FLOOR_Z
        lo = np.array([cx - WORKSPACE_HALF, -WORKSPACE_HALF, h + 0.004, -np.pi / 2])
        hi = np.array([cx + WORKSPACE_HALF, WORKSPACE_HALF, h + MAX_HEIGHT, np.pi / 2])
        return lo, hi

    # ------------------------------------------------------------------ internals

    def _check_action(self, action) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (6,):
            raise ValueError(f"action must have shape (6,) [dx, dy, dz, dtheta, close, terminate], got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action contains NaN or inf: {a.tolist()}")
        return np.clip(a, -1.0, 1.0)

    def _move(self, a: np.ndarray) -> None:
        lo, hi = self.workspace
        target = self.tcp + a[:4] * [MAX_XY_STEP, MAX_XY_STEP, MAX_Z_STEP, MAX_YAW_STEP]
        self.data.ctrl[self._ids.act_hand] = np.clip(target, lo, hi)
        mujoco.mj_step(self.model, self.data, nstep=CONTROL_SUBSTEPS)

    def _close_and_lift(self) -> bool:
        m, d, ids = self.model, self.data, self._ids
        d.ctrl[ids.act_hand] = self.tcp  # hold still while closing
        for frac in (0.25, 0.5, 0.75, 1.0):  # close over 0.1 s, then squeeze
            d.ctrl[ids.act_fingers] = frac * sc.FINGER_TRAVEL
            mujoco.mj_step(m, d, nstep=5)
        mujoco.mj_step(m, d, nstep=16)
        self._closed = True
        start = d.qpos[ids.hand_qpos[2]]
        top = sc.BIN_FLOOR_Z + LIFT_HEIGHT
        # A smooth lift (target ramped every 5 ms over 0.24 s): a stepped target would jerk the
        # stiff arm hard enough to shake objects out of the jaws.
        for z in np.linspace(start, top, LIFT_SUBSTEPS + 1)[1:]:
            d.ctrl[ids.act_hand[2]] = z
            mujoco.mj_step(m, d)
        mujoco.mj_step(m, d, nstep=16)
        return self._lifted_shape() is not None

    def _lifted_shape(self) -> int | None:
        z = self.data.xipos[self._ids.slot_bodies[self._active_slots], 2]
        up = np.flatnonzero(z > sc.BIN_FLOOR_Z + SUCCESS_HEIGHT)
        return int(self._shape_ids[up[0]]) if len(up) else None

    def _load_shapes(self, shape_ids: np.ndarray) -> None:
        """Swap the chosen shapes' meshes, geometry and inertia into the slots; park the rest."""
        m, ids, tab = self.model, self._ids, self.scene.shapes
        fr, mass_scale = (REAL_FRICTION_SCALE, REAL_MASS_SCALE) if self.cfg.domain == "real" else (1.0, 1.0)
        rows = np.searchsorted(tab.shape_ids, shape_ids)
        n = len(shape_ids)
        g, b = ids.slot_geoms[:n], ids.slot_bodies[:n]
        m.geom_dataid[g] = tab.mesh_ids[rows]
        m.geom_size[g] = tab.geom_size[rows]
        m.geom_rbound[g] = tab.geom_rbound[rows]
        m.geom_aabb[g] = tab.geom_aabb[rows]
        m.geom_pos[g] = tab.geom_pos[rows]
        m.geom_quat[g] = tab.geom_quat[rows]
        m.geom_friction[g, 0] = tab.friction[rows] * fr
        m.body_mass[b] = tab.body_mass[rows] * mass_scale
        m.body_inertia[b] = tab.body_inertia[rows] * mass_scale
        m.body_ipos[b] = tab.body_ipos[rows]
        m.body_iquat[b] = tab.body_iquat[rows]
        parked = ids.slot_bodies[n:]
        m.body_gravcomp[ids.slot_bodies] = 0.0
        m.body_gravcomp[parked] = 1.0
        m.geom_contype[ids.slot_geoms] = 1
        m.geom_conaffinity[ids.slot_geoms] = 1
        m.geom_contype[ids.slot_geoms[n:]] = 0
        m.geom_conaffinity[ids.slot_geoms[n:]] = 0
        mujoco.mj_setConst(m, self.data)

    def _place_objects(self, rng: np.random.Generator, bins: np.ndarray) -> None:
        d, ids, tab = self.data, self._ids, self.scene.shapes
        placed: list[tuple[float, float, float]] = []
        margin = 0.02
        for k, b in enumerate(bins):
            verts = tab.vertices[tab.row(int(self._shape_ids[k]))]
            quat = rng.normal(size=4)
            quat /= np.linalg.norm(quat)
            rot = np.zeros(9)
            mujoco.mju_quat2Mat(rot, quat)
            world = verts @ rot.reshape(3, 3).T
            r = float(np.max(np.linalg.norm(world[:, :2], axis=1)))
            lim = sc.BIN_HALF - r - 0.005
            cx = self.scene.bin_centres[b, 0]
            z_lift = 0.0
            for _ in range(30):
                x, y = cx + rng.uniform(-lim, lim), rng.uniform(-lim, lim)
                if all((x - px) ** 2 + (y - py) ** 2 > (r + pr + margin) ** 2 for px, py, pr in placed):
                    break
            else:  # crowded: drop it from above the others
                z_lift = 0.06 * (1 + sum(1 for _ in placed))
            placed.append((x, y, r))
            z = sc.BIN_FLOOR_Z - world[:, 2].min() + 0.002 + z_lift
            adr = ids.slot_qpos[k]
            d.qpos[adr : adr + 3] = [x, y, z]
            d.qpos[adr + 3 : adr + 7] = quat
        for k in range(len(bins), len(ids.slot_bodies)):
            adr = ids.slot_qpos[k]
            d.qpos[adr : adr + 3] = _PARK + [0.0, 0.2 * k, 0.0]
            d.qpos[adr + 3 : adr + 7] = [1, 0, 0, 0]

    def _update_arm(self) -> None:
        """Place the visual arm links by analytic IK from the base to the wrist above the TCP."""
        d, mid = self.data, self._ids.arm_mocap
        base = self._base
        shoulder = base + [0.0, 0.0, sc.SHOULDER_H]
        tcp = self.tcp
        wrist = np.array([tcp[0], tcp[1], tcp[2] + sc.WRIST_ABOVE_TCP])
        elbow = _elbow(shoulder, wrist, sc.UPPER_ARM, sc.FOREARM)
        d.mocap_pos[mid["pedestal"]] = base
        d.mocap_pos[mid["arm_shoulder"]] = shoulder
        d.mocap_pos[mid["arm_elbow"]] = elbow
        for name, p0, p1 in (("arm_upper", shoulder, elbow), ("arm_fore", elbow, wrist)):
            d.mocap_pos[mid[name]] = (p0 + p1) / 2
            d.mocap_quat[mid[name]] = _quat_z_to(p1 - p0)

    def _ensure_renderer(self) -> mujoco.Renderer:
        if self._renderer is None:
            s = self.cfg.image_size
            # An offscreen buffer of exactly the image size renders fastest.
            self.model.vis.global_.offwidth = s
            self.model.vis.global_.offheight = s
            # Shadow-map resolution in proportion to the image (the map is most of a shadowed frame's cost).
            self.model.vis.quality.shadowsize = int(min(max(4 * s, 256), 2048))
            self._renderer = mujoco.Renderer(self.model, s, s)
        return self._renderer

    def _camera(self, domain: str):
        """Camera pose of a domain this episode (cached: it changes only at reset)."""
        key = (domain, id(self._looks[domain]))
        if key not in self._cam_cache:
            pos, target = self._cam_base
            self._cam_cache[key] = self._looks[domain].camera_pose(pos, target, sc.CAMERA_FOVY)
        return self._cam_cache[key]

    def _prepare_view(self, domain: str) -> mujoco.Renderer:
        """Pose the visual arm and apply the domain's look; return the renderer."""
        r = self._ensure_renderer()
        self._update_arm()
        mujoco.mj_kinematics(self.model, self.data)
        self._looks[domain].apply(self.scene, self.data, self._origin, self._camera(domain))
        return r

    def _render(self, domain: str) -> np.ndarray:
        r = self._prepare_view(domain)
        look = self._looks[domain]
        r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = look.shadows
        r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        r.update_scene(self.data, camera=self._ids.camera)
        img = r.render()
        if look.camera_model is not None:
            noise_rng = np.random.default_rng([self._episode_seed, self._steps, dom.DOMAINS.index(domain)])
            img = look.camera_model.apply(img, noise_rng)
        return img

    def _object_mask(self, domain: str) -> np.ndarray:
        r = self._prepare_view(domain)
        r.enable_segmentation_rendering()
        try:
            r.update_scene(self.data, camera=self._ids.camera)
            seg = r.render()
        finally:
            r.disable_segmentation_rendering()
        geoms = self._ids.slot_geoms[self._active_slots]
        return (seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM) & np.isin(seg[..., 0], geoms)

    def _observe(self) -> dict[str, np.ndarray]:
        image = self._render(self.cfg.domain)
        tcp = self.tcp
        values = [float(self._closed), float(np.clip(tcp[2] - sc.BIN_FLOOR_Z, 0.0, 0.5))]
        if self.cfg.state == "pose":
            rel = (tcp[:2] - self._origin[:2]) / WORKSPACE_HALF
            values += [*np.clip(rel, -1.0, 1.0), float(np.clip(tcp[3] / (np.pi / 2), -1.2, 1.2))]
        state = np.array(values, np.float32)
        self._last_obs = {"image": image, "state": state}
        return {"image": image, "state": state}


def aux_distance_targets(privileged: np.ndarray, actions: np.ndarray, caps: tuple[float, ...] = (AUX_DISTANCE_CAP,)) -> np.ndarray:
    """The distance from where each action takes the gripper in x/y to the nearest object, once per cap
    (metres): divided by the cap and capped at 1. A close or terminate action leaves the gripper where it
    is. A small cap (a few cm) gives a target that resolves the last centimetres before a grasp.

    ``privileged`` (B, PRIVILEGED_DIM), ``actions`` (B, N, 6) -> (B, N, len(caps)) float32; rows whose
    privileged vector is NaN (no simulator truth, e.g. real data) give NaN.
    """
    privileged = np.asarray(privileged, np.float32)
    actions = np.asarray(actions, np.float32)
    moves = np.where((actions[..., 4:6] > 0).any(-1, keepdims=True), 0.0, np.clip(actions[..., :2], -1, 1))
    to = np.clip(privileged[:, None, :2] + moves * (MAX_XY_STEP / WORKSPACE_HALF), -1.0, 1.0)  # (B, N, 2)
    objects = privileged[:, 2:].reshape(len(privileged), MAX_OBJECTS, 2)  # (B, K, 2)
    d = np.linalg.norm(to[:, :, None] - objects[:, None], axis=-1) * WORKSPACE_HALF  # (B, N, K) metres
    has = np.isfinite(privileged[:, :2]).all(-1) & np.isfinite(objects[..., 0]).any(-1)  # (B,)
    near = np.where(np.isnan(d), np.inf, d).min(-1) if d.size else np.zeros(d.shape[:2], np.float32)
    out = np.stack([np.minimum(near / cap, 1.0) for cap in caps], axis=-1).astype(np.float32)
    out[~has] = np.nan
    return out


def _validate(cfg: EnvConfig) -> None:
    if cfg.domain not in dom.DOMAINS:
        raise ValueError(f"unknown domain {cfg.domain!r}; expected one of {dom.DOMAINS}")
    if cfg.objects not in SPLITS:
        raise ValueError(f"objects must be one of {SPLITS}, got {cfg.objects!r}")
    if not isinstance(cfg.image_size, (int, np.integer)) or not MIN_IMAGE_SIZE <= cfg.image_size <= MAX_IMAGE_SIZE:
        raise ValueError(f"image_size must be an integer in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}], got {cfg.image_size!r}")
    if not 1 <= cfg.num_objects <= MAX_OBJECTS:
        raise ValueError(f"num_objects must be in [1, {MAX_OBJECTS}], got {cfg.num_objects}")
    if cfg.max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {cfg.max_steps}")
    if cfg.num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {cfg.num_bins}")
    if cfg.base_bin != "random" and not (isinstance(cfg.base_bin, (int, np.integer)) and 0 <= cfg.base_bin < cfg.num_bins):
        raise ValueError(f"base_bin must be 'random' or an int in [0, {cfg.num_bins}), got {cfg.base_bin!r}")
    if cfg.state not in STATE_MODES:
        raise ValueError(f"state must be one of {STATE_MODES}, got {cfg.state!r}")
    if not cfg.aux_distance_caps or not all(math.isfinite(c) and c > 0 for c in cfg.aux_distance_caps):
        raise ValueError(f"aux_distance_caps must be one or more positive distances in metres, got {cfg.aux_distance_caps!r}")
    if len(cfg.real_camera_offset) != 4:
        raise ValueError(f"real_camera_offset must be (dx, dy, dz, dfovy), got {cfg.real_camera_offset!r}")


def _elbow(shoulder: np.ndarray, wrist: np.ndarray, l1: float, l2: float) -> np.ndarray:
    """Elbow-up solution of a two-link arm in the vertical plane through shoulder and wrist."""
    vx, vy, vz = (float(w - s) for w, s in zip(wrist, shoulder))
    norm = math.sqrt(vx * vx + vy * vy + vz * vz) or 1e-9
    dist = min(max(norm, abs(l1 - l2) + 1e-3), l1 + l2 - 1e-3)
    ux, uy, uz = vx / norm, vy / norm, vz / norm
    upx, upy, upz = -uz * ux, -uz * uy, 1.0 - uz * uz  # world z minus its component along u
    n_up = math.sqrt(upx * upx + upy * upy + upz * upz)
    if n_up < 1e-6:
        upx, upy, upz, n_up = 0.0, -1.0, 0.0, 1.0
    a = (l1 * l1 - l2 * l2 + dist * dist) / (2 * dist)
    h = math.sqrt(max(l1 * l1 - a * a, 0.0)) / n_up
    return np.array([shoulder[0] + a * ux + h * upx, shoulder[1] + a * uy + h * upy, shoulder[2] + a * uz + h * upz])


def _quat_z_to(v: np.ndarray) -> np.ndarray:
    """Quaternion rotating the z axis onto direction ``v``."""
    x, y, z = (float(c) for c in v)
    n = math.sqrt(x * x + y * y + z * z) or 1e-9
    x, y, z = x / n, y / n, z / n
    if z < -0.999999:
        return np.array([0.0, 1.0, 0.0, 0.0])
    q = np.array([1.0 + z, -y, x, 0.0])  # (1 + z.v, z x v)
    return q / math.sqrt(float(q @ q))
