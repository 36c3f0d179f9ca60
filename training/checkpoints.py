"""Training checkpoints: RUN/checkpoints/<step>/ with orbax's CheckpointManager.

Every step directory holds four items:

    params       EMA params (orbax standard pytree)      -> engine.checkpoint.load_model
    model        JSON {"format", "config", "card"}        -> engine.checkpoint.load_model
    train_state  params, EMA, optimiser state, step, rng key data, skip counter,
                 wall time: everything the loop needs to continue
    training     JSON: the RunConfig (model, data, train, parallel configs)

orbax writes a step into a temporary directory and renames it when complete, so a run
killed during a save (kill -9 included) leaves no half step that looks finished; the
next CheckpointManager removes such temporary directories itself, on a background
thread whose result the first save waits for. Nothing else may delete them: a second
remover racing that thread made its rmtree raise FileNotFoundError at the first save of
a resumed run. A save that would not fit on the disk is refused before it starts. A
step that is complete but damaged (files removed or corrupted later) fails to restore
with a clear message and the previous step is used.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from engine.checkpoint import CheckpointError, model_meta, quiet_failed_save
from training.files import require_space

ITEMS = ("params", "model", "train_state", "training")
log = logging.getLogger(__name__)


class RunCheckpoints:
    def __init__(self, run_dir: str | Path, keep: int = 3):
        self.directory = (Path(run_dir) / "checkpoints").absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max(1, keep),
            create=True,
            cleanup_tmp_directories=True,
            enable_async_checkpointing=False,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)

    def steps(self) -> list[int]:
        self.manager.reload()
        return sorted(self.manager.all_steps(), reverse=True)

    def save(self, step: int, state: dict, model_config, card: dict, run_config: dict) -> None:
        """Saves a step; raises ENOSPC first, writing nothing, when the disk has less room
        than the step needs (`training.files.require_space`)."""
        require_space(self.directory, self._step_size(state))
        with quiet_failed_save():
            self.manager.save(
                step,
                args=ocp.args.Composite(
                    # Host copies: a model dir must load on any topology (one CPU or a pod).
                    params=ocp.args.StandardSave(host_copy(state["ema"])),
                    model=ocp.args.JsonSave(model_meta(model_config, card)),
                    train_state=ocp.args.StandardSave(state),
                    training=ocp.args.JsonSave(run_config),
                ),
                force=True,
            )
            self.manager.wait_until_finished()

    def _step_size(self, state: dict) -> int:
        """Bytes the next step takes on disk: as much as the newest one, or before the
        first, `room_needed` (the EMA params item repeats part of the state)."""
        newest = self.manager.latest_step()
        if newest is not None and (self.directory / str(newest)).is_dir():
            return sum(p.lstat().st_blocks * 512 for p in (self.directory / str(newest)).rglob("*"))
        return room_needed(state)

    def restore_latest(self, abstract_state: dict) -> tuple[int, dict, dict]:
        """Restores the newest step that loads: (step, state, card).

        `abstract_state` gives shapes, dtypes and shardings (jax.ShapeDtypeStruct leaves).
        Raises CheckpointError when no step loads; damaged newer steps are reported.
        """
        errors: list[str] = []
        for step in self.steps():
            try:
                restored = self.manager.restore(
                    step,
                    args=ocp.args.Composite(
                        train_state=ocp.args.StandardRestore(abstract_state),
                        model=ocp.args.JsonRestore(),
                    ),
                )
                state = restored["train_state"]
                _check_finite(state)
                if errors:
                    self._set_aside([s for s in self.steps() if s > step])
                return step, state, dict(restored["model"].get("card", {}))
            except Exception as error:  # orbax raises many types for damaged files
                message = (
                    f"checkpoint {self.directory / str(step)} is damaged or incomplete: "
                    f"{type(error).__name__}: {str(error)[:300]}"
                )
                log.warning(message)
                print(f"warning: {message}; trying the previous one", flush=True)
                errors.append(message)
        if errors:
            raise CheckpointError("no checkpoint of this run loads:\n  " + "\n  ".join(errors))
        raise CheckpointError(f"no checkpoint in {self.directory} to resume from")

    def _set_aside(self, steps: list[int]) -> None:
        """Renames damaged steps to damaged-<step>-<time> (kept for inspection, no longer
        a step), so the resumed run can save those step numbers again."""
        if jax.process_index() == 0:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for step in steps:
                source = self.directory / str(step)
                target = self.directory / f"damaged-{step}-{stamp}"
                source.rename(target)
                print(f"moved the damaged checkpoint aside to {target}", flush=True)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("harmonic-set-aside-damaged")
        self.manager.reload()

    def close(self) -> None:
        self.manager.close()


def host_copy(tree):
    """Numpy copies of replicated arrays (fine across processes: every process holds
    the whole value)."""
    return jax.tree.map(
        lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else np.asarray(x), tree
    )


def room_needed(tree) -> int:
    """A generous estimate of the disk an orbax checkpoint of `tree` takes: twice its
    arrays' bytes (orbax's metadata and many small files in file-system blocks) + 1 MB."""
    return 2 * sum(leaf.nbytes for leaf in jax.tree.leaves(tree)) + 2**20


def _check_finite(state: dict) -> None:
    for leaf in jax.tree.leaves(host_copy(state["params"])):
        if not np.all(np.isfinite(leaf)):
            raise ValueError("params contain NaN or infinite values")
