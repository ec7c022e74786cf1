"""Neural networks: the grasping Q-network (and, later, generators and discriminators)."""

from rlcyclegan.nets.qnet import QNET_PRESETS, GraspQNet, QNetConfig, make_qnet

__all__ = ["QNET_PRESETS", "GraspQNet", "QNetConfig", "make_qnet"]
