"""A training run's newest state as a few small files, to carry a run between machines.

GPU time comes in blocks on fresh machines, and between blocks the run lives in the
repository, so its state must be small: `pack` keeps what `harmonic train --resume`
needs to continue the same curve (the newest checkpoint's train state, the run's
configs and metrics.csv). The weights stay float32; the EMA is stored as its difference
from the weights and Adam's moments as bfloat16, which halves the size (the difference
and the moments need far less precision than the weights they update). `unpack`
rebuilds a run folder whose newest checkpoint is that state.

Files: `meta.json` (format, step, card, run config, how each leaf is stored),
`metrics.csv`, and `state.npz` split into `state.npz.000`, `.001`, ... of at most
`part_mb` MiB each (a machine's file transfer may cap file sizes).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import ml_dtypes
import numpy as np

from training.checkpoints import RunCheckpoints
from training.config import RunConfig
from training.files import write_text
from training.train_step import init_state, make_optimizer

FORMAT = "harmonicrnn-run-state/1"
FULL, DELTA, HALF = "float32", "bfloat16 difference from params", "bfloat16"


def _abstract_state(run):
    optimizer = make_optimizer(run.train)
    return jax.eval_shape(lambda: init_state(run.model, run.train, optimizer))


def _keyed(tree) -> dict[str, Any]:
    return {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _storage(key: str, leaf) -> str:
    if key.startswith("['ema']"):
        return DELTA
    if key.startswith("['opt_state']") and np.issubdtype(leaf.dtype, np.floating) and leaf.ndim > 0:
        return HALF
    return FULL


def pack(run_dir: str | Path, out: str | Path, part_mb: int = 15) -> dict:
    """Writes the newest checkpoint of `run_dir` into `out`; returns meta.json's content."""
    run_dir, out = Path(run_dir), Path(out)
    run = RunConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device), _abstract_state(run))
    checkpoints = RunCheckpoints(run_dir)
    try:
        step, state, card = checkpoints.restore_latest(abstract)
    finally:
        checkpoints.close()
    leaves = {k: np.asarray(jax.device_get(v)) for k, v in _keyed(state).items()}
    arrays: dict[str, Any] = {}
    storage: dict[str, str] = {}
    for i, (key, leaf) in enumerate(leaves.items()):
        storage[key] = _storage(key, leaf)
        if storage[key] == DELTA:
            leaf = leaf - leaves["['params']" + key[len("['ema']") :]]
        if storage[key] != FULL:
            leaf = leaf.astype(ml_dtypes.bfloat16).view(np.uint16)
        arrays[f"leaf{i}"] = leaf
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    part = part_mb << 20
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for n, start in enumerate(range(0, len(data), part)):
        (tmp / f"state.npz.{n:03d}").write_bytes(data[start : start + part])
    if (run_dir / "metrics.csv").is_file():
        shutil.copyfile(run_dir / "metrics.csv", tmp / "metrics.csv")
    meta = {"format": FORMAT, "step": int(step), "card": card, "run": run.to_dict(), "storage": list(storage.values())}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return meta


def unpack(packed: str | Path, run_dir: str | Path) -> int:
    """Makes `run_dir` a run whose newest checkpoint is the packed state; returns its step."""
    packed, run_dir = Path(packed), Path(run_dir)
    meta = json.loads((packed / "meta.json").read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{packed} is not a packed run state (format {meta.get('format')!r})")
    run = RunConfig.from_dict(meta["run"])
    data = b"".join(p.read_bytes() for p in sorted(packed.glob("state.npz.[0-9][0-9][0-9]")))
    arrays = np.load(io.BytesIO(data))
    structure = _abstract_state(run)
    abstract = _keyed(structure)
    leaves: dict[str, np.ndarray] = {}
    # Weights first: the EMA is stored as its difference from them (and sorts before them).
    for i, (key, spec) in sorted(enumerate(abstract.items()), key=lambda item: meta["storage"][item[0]] == DELTA):
        leaf, how = arrays[f"leaf{i}"], meta["storage"][i]
        if how != FULL:
            leaf = leaf.view(ml_dtypes.bfloat16).astype(np.float32)
        if how == DELTA:
            leaf = leaf + leaves["['params']" + key[len("['ema']") :]]
        leaves[key] = np.asarray(leaf, spec.dtype).reshape(spec.shape)
    state = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(structure), [leaves[key] for key in abstract])
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.json", json.dumps(meta["run"], indent=2))
    if (packed / "metrics.csv").is_file():
        shutil.copyfile(packed / "metrics.csv", run_dir / "metrics.csv")
    checkpoints = RunCheckpoints(run_dir)
    try:
        checkpoints.save(meta["step"], state, run.model, meta["card"], meta["run"])
    finally:
        checkpoints.close()
    return int(meta["step"])
