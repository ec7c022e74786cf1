"""Speed of the QT-Opt policy: CEM action latency and training steps per second."""

from __future__ import annotations

import time

import numpy as np
import torch


def _median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def bench_policy(qnet: str = "default", image_size: int = 64, repeats: int = 50, train_steps: int = 30, batch_size: int = 64,
                 device: str = "cpu", threads: int = 0, amp: str = "auto") -> dict:
    """CEM latency at batch 1 and 64 (2 iterations x 64 samples, 6 elites) and TD steps/s at the cpu preset."""
    from rlcyclegan.nets.qnet import QNET_PRESETS, GraspQNet, QNetConfig
    from rlcyclegan.rl.policy import Policy
    from rlcyclegan.train.common import use_bf16
    from rlcyclegan.train.qtopt import preset_config, td_update

    if threads > 0:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    qcfg = QNetConfig(**{**QNET_PRESETS[qnet], "image_size": image_size})
    low, high = -np.ones(qcfg.action_dim, np.float32), np.ones(qcfg.action_dim, np.float32)
    policy = Policy(GraspQNet(qcfg), low, high, device=dev)
    rng = np.random.default_rng(0)
    result: dict = {"qnet": qnet, "image_size": image_size, "device": str(dev), "threads": torch.get_num_threads(),
                    "parameters": sum(p.numel() for p in policy.qnet.parameters()), "cem": policy.cem}
    for b in (1, 64):
        obs = {"image": rng.integers(0, 256, (b, image_size, image_size, 3), dtype=np.uint8),
               "state": rng.random((b, qcfg.state_dim), dtype=np.float32)}
        ms = _median_ms(lambda: policy.act(obs), repeats if b == 1 else max(5, repeats // 5))
        result[f"act_batch{b}_ms"] = ms
        result[f"act_batch{b}_ms_per_state"] = ms / b
    result["act_batch1_goal_ms"] = 5.0
    result["act_batch1_meets_goal"] = result["act_batch1_ms"] <= 5.0

    cfg = preset_config("cpu", qnet=qnet, image_size=image_size, batch_size=batch_size, amp=amp)
    nets = [GraspQNet(qcfg).to(dev) for _ in range(3)]
    opt = torch.optim.Adam(nets[0].parameters(), lr=cfg.lr)
    gen = torch.Generator(dev).manual_seed(0)
    batch = {
        "image": torch.as_tensor(rng.integers(0, 256, (batch_size, image_size, image_size, 3), dtype=np.uint8), device=dev),
        "next_image": torch.as_tensor(rng.integers(0, 256, (batch_size, image_size, image_size, 3), dtype=np.uint8), device=dev),
        "state": torch.rand(batch_size, qcfg.state_dim, device=dev),
        "next_state": torch.rand(batch_size, qcfg.state_dim, device=dev),
        "action": torch.rand(batch_size, qcfg.action_dim, device=dev) * 2 - 1,
        "reward": (torch.rand(batch_size, device=dev) < 0.3).float(),
        "done": torch.rand(batch_size, device=dev) < 0.2,
    }
    step = lambda: td_update(nets[0], nets[1], nets[2], opt, batch, (low, high), cfg, gen, dev)  # noqa: E731
    ms = _median_ms(step, train_steps)
    result.update(train_amp=amp, train_bf16=use_bf16(dev, amp), train_batch_size=batch_size, train_step_ms=ms, train_steps_per_second=1000 / ms,
                  train_transitions_per_second=1000 * batch_size / ms)
    return result
