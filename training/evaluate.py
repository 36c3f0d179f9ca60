"""Test/valid NLL of a model checkpoint on a data set split, and run export."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import jax
import ml_dtypes

from engine.checkpoint import CheckpointError, ModelCheckpoint, load_model, save_model
from training.checkpoints import room_needed
from training.data.loader import Split
from training.files import require_space
from training.loop import device_description, round_up
from training.mesh import make_mesh, put_replicated
from training.validation import evaluate_split, make_eval_fn


def evaluate_checkpoint(
    checkpoint: str | Path,
    data_dir: str | Path,
    split: str = "test",
    batch_size: int = 8,
    max_clips: int = 0,
    progress: bool = True,
) -> tuple[float, int, ModelCheckpoint]:
    """Mean NLL in bits per sample of `checkpoint` (its saved weights: EMA for runs) on
    `split` of the built data set `data_dir`. Returns (bits, clips, loaded checkpoint).
    Data-parallel over all local devices."""
    loaded = load_model(checkpoint)
    data = Split(data_dir, split)
    if len(data) == 0:
        raise ValueError(f"split {split!r} of {data_dir} has no clips")
    mesh = make_mesh(0, 1)
    batch = round_up(batch_size, mesh.shape["data"])
    params = put_replicated(jax.device_get(loaded.params), mesh)
    bits = evaluate_split(
        make_eval_fn(loaded.config, mesh),
        params,
        data,
        mesh,
        batch,
        loaded.config.total_pooling,
        max_clips,
        progress=progress,
    )
    clips = len(data) if not max_clips else min(max_clips, len(data))
    return bits, clips, loaded


def export_run(
    run: str | Path,
    out: str | Path,
    name: str = "",
    test: bool = True,
    max_clips: int = 0,
    progress: bool = True,
    bfloat16: bool = False,
) -> tuple[Path, dict]:
    """Writes a run's newest loadable EMA params as a standalone model directory whose
    card carries the data, steps, wall time, device and valid/test NLL in bits.
    `bfloat16` stores the weights in half the bytes: a starting point for `--init-from`
    small enough to travel to a GPU machine, not a model to ship (its NLL moves)."""
    run, out = Path(run), Path(out).absolute()
    if out.exists():
        raise CheckpointError(f"{out} already exists; choose a new folder")
    loaded = load_model(run / "checkpoints" if (run / "checkpoints").is_dir() else run)
    card = dict(loaded.card)
    card["name"] = name or card.get("name") or run.name
    card["exported_from"] = str(loaded.path)
    data_path = (card.get("data") or {}).get("path")
    if test and data_path and Path(data_path).is_dir():
        bits, clips, _ = evaluate_checkpoint(loaded.path, data_path, "test", max_clips=max_clips, progress=progress)
        card["test_nll_bits"] = round(bits, 5)
        card["test_clips"] = clips
    card.setdefault("device", device_description())
    # Staged in a hidden sibling folder and renamed into place: what a failed save leaves
    # (orbax's temporary folders included) is inside it and removed whole; a kill leaves
    # only this hidden folder, never a model folder that looks finished.
    staging = out.with_name(f".{out.name}.export-{os.getpid()}")
    params = jax.tree.map(lambda leaf: leaf.astype(ml_dtypes.bfloat16), loaded.params) if bfloat16 else loaded.params
    require_space(out.parent, room_needed(params))
    try:
        os.rename(save_model(staging / out.name, loaded.config, params, card), out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out, card
