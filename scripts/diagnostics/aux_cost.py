"""Cost of the auxiliary loss: median time of one QT-Opt TD step (``train.qtopt.td_update``) at the cpu
recipe (1 thread, batch 64, 64 px, CoordConv + batch norm) without and with ``--aux-weight``.

    python scripts/diagnostics/aux_cost.py
"""
import time

import numpy as np
import torch
from dataclasses import replace
from rlcyclegan.train.qtopt import preset_config, make_qnet, td_update
from rlcyclegan.rl.qtopt import AuxSpec
from rlcyclegan.envs.grasp import PRIVILEGED_DIM, aux_distance_targets
torch.set_num_threads(1)
cfg = preset_config("cpu", qnet_coords=True, qnet_norm="batch")
gates=(4,5); low, high = -np.ones(6, np.float32), np.ones(6, np.float32)
g = torch.Generator().manual_seed(0)
b = 64
batch = {"image": torch.randint(0,256,(b,64,64,3),dtype=torch.uint8,generator=g), "next_image": torch.randint(0,256,(b,64,64,3),dtype=torch.uint8,generator=g),
         "state": torch.rand(b,5), "next_state": torch.rand(b,5), "action": torch.rand(b,6)*2-1, "reward": (torch.rand(b)<0.3).float(), "done": torch.rand(b)<0.2,
         "privileged": torch.as_tensor(np.concatenate([np.random.uniform(-1,1,(b,12)), np.full((b,10),np.inf)],1).astype(np.float32))}
for aux_on in (False, True):
    aux = AuxSpec(PRIVILEGED_DIM, 1, aux_distance_targets) if aux_on else None
    c = replace(cfg, aux_weight=10.0 if aux_on else 0.0)
    nets = [make_qnet(c, (64,64,3), 5, 6, gates, 1 if aux_on else 0) for _ in range(3)]
    opt = torch.optim.Adam(nets[0].parameters(), lr=5e-4)
    ts = []
    for i in range(25):
        t = time.perf_counter(); td_update(*nets, opt, batch, (low, high), c, g, torch.device("cpu"), aux); ts.append(time.perf_counter() - t)
    print("aux" if aux_on else "plain", "median ms", round(1000*float(np.median(ts[5:])), 1))
