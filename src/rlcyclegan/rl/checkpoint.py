"""Checkpoint files: written atomically, read back with errors that say what is wrong."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupted, of another kind or another config."""


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """torch.save to ``path.tmp``, fsync, then rename over ``path`` (a crash never leaves a half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save({"format_version": FORMAT_VERSION, **payload}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike[str], kind: str | None = None, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint file (or a run folder's latest one) and check its format and ``kind``."""
    path = resolve_checkpoint(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # torch raises many types for a damaged file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{path}: not an rlcyclegan checkpoint (no format_version)")
    if ckpt["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {ckpt['format_version']}, this version reads {FORMAT_VERSION}")
    if kind is not None and ckpt.get("kind") != kind:
        raise CheckpointError(f"{path}: a {ckpt.get('kind')!r} checkpoint, expected {kind!r}")
    return ckpt


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A file as is; a run folder -> its ``checkpoints/latest.pt`` (else its ``final.pt``, the slim export an
    experiment keeps of a finished stage); a checkpoints folder -> ``latest.pt``."""
    path = Path(path)
    if path.is_dir():
        for cand in (path / "checkpoints" / "latest.pt", path / "latest.pt", path / "final.pt"):
            if cand.is_file():
                return cand
        raise CheckpointError(f"{path}: a folder without checkpoints/latest.pt (or final.pt)")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    return path
