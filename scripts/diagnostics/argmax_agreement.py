"""Does an RL-CycleGAN run's Q_real choose other actions on a real image than on G(x) of the same state, and
which choice is better by a critic trained in `real`?

    python scripts/diagnostics/argmax_agreement.py RLCYCLEGAN_CKPT ORACLE_CKPT [--episodes 40]

Plays scripted unseen-object episodes and renders every state in sim and real (paired renders). For each state it
takes Q_real's CEM argmax on the real render y (a_y) and on G(x) (a_g), both with the cpu recipe's acting CEM
(3x256, 12 elites), and prints the mean Q-values: Q_real(y, a_y), Q_real(G(x), a_y), Q_real(G(x), a_g),
Q_real(y, a_g), and the Oracle's (QT-Opt trained in `real`) Q(y, .) of a_y, a_g, its own argmax and the scripted
action, plus the mean |a_y - a_g| per action dimension. Q_real(y, a_y) far above Q_real(G(x), a_g) with the Oracle
rating a_y below a_g would be over-estimation on real images (offline real TD).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from rlcyclegan.experiments.translation import load_translation_model, make_paired_env, paired_renders, translate_array
from rlcyclegan.rl.cem import cem_argmax
from rlcyclegan.rl.policy import Policy

SEED = 3_500_000_000
"""Episode seeds SEED + i, apart from the evaluation seeds (3e9 + i)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("oracle")
    ap.add_argument("--episodes", type=int, default=40)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    model = load_translation_model(args.checkpoint)
    env = make_paired_env(model, "test")
    data = paired_renders(env, [SEED + i for i in range(args.episodes)], masks=False)
    gx = translate_array(model.generator("sim2real"), data["sim"])
    oracle = Policy.load(args.oracle).qnet
    bounds = (torch.as_tensor(env.action_space.low), torch.as_tensor(env.action_space.high))
    state = torch.as_tensor(data["state"])
    y = torch.as_tensor(data["real"])

    def argmax(q, images):
        features = q.encode(torch.as_tensor(images))
        return cem_argmax(lambda s, a: q.head(features, s, a), state, bounds, 3, 256, 12, generator=torch.Generator().manual_seed(0))

    def value(q, images, actions) -> float:
        return torch.sigmoid(q(torch.as_tensor(images), state, actions).float()).mean().item()

    q_real = model.q_real
    a_y, v_y = argmax(q_real, y)
    a_g, v_g = argmax(q_real, gx)
    _, v_o = argmax(oracle, y)
    print(json.dumps({
        "states": int(len(state)), "episodes": args.episodes,
        "Q_real(y,a_y)": torch.sigmoid(v_y).mean().item(), "Q_real(G(x),a_y)": value(q_real, gx, a_y),
        "Q_real(G(x),a_g)": torch.sigmoid(v_g).mean().item(), "Q_real(y,a_g)": value(q_real, y, a_g),
        "Oracle(y,a_y)": value(oracle, y, a_y), "Oracle(y,a_g)": value(oracle, y, a_g),
        "Oracle(y,own argmax)": torch.sigmoid(v_o).mean().item(),
        "Oracle(y,scripted)": value(oracle, y, torch.as_tensor(data["action"])),
        "mean |a_y - a_g|": np.round((a_y - a_g).abs().mean(0).numpy(), 3).tolist(),
    }))


if __name__ == "__main__":
    main()
