"""Experiments on trained runs: evaluations that combine checkpoints, environments and metrics."""
