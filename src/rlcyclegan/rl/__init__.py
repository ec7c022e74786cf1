"""QT-Opt: CEM action selection, TD targets with clipped double-Q, target-network updates, replay."""

from rlcyclegan.rl.cem import cem_argmax
from rlcyclegan.rl.qtopt import (
    clipped_double_q,
    ema_update,
    lagged_update,
    polyak_update,
    td_loss,
    td_targets,
)

__all__ = ["cem_argmax", "clipped_double_q", "ema_update", "lagged_update", "polyak_update", "td_loss", "td_targets"]
