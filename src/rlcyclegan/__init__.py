"""rlcyclegan: RL-CycleGAN sim-to-real transfer for vision-based grasping (Rao et al., CVPR 2020).

Importing the package registers the Gymnasium environments ``rlcyclegan/Grasp-v0`` and
``rlcyclegan/MultiBinGrasp-v0``.
"""

from __future__ import annotations

import os

# MuJoCo renders offscreen through EGL (Mesa's llvmpipe without a GPU, the NVIDIA driver with one).
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
# Mesa's software rasteriser: one thread is fastest for small images and for parallel workers.
os.environ.setdefault("LP_NUM_THREADS", "1")

__version__ = "0.1.0"

from rlcyclegan import envs as _envs  # noqa: E402,F401  (registers the environments)
