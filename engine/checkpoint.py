"""Model checkpoints: weights, the config that shapes them, and a model card.

On disk a model checkpoint is a directory written by orbax with two items:

    DIR/params   the weights (orbax standard pytree; EMA weights for trained models)
    DIR/model    JSON: {"format": FORMAT, "config": ModelConfig dict, "card": {...}}

Training writes these two items into every step directory of a run, next to its own
training state, so `load_model` opens a step directory, a run's checkpoint folder (the
newest step that loads) and an exported model alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from engine.config import ModelConfig
from engine.shape_cache import expected_shapes, flat_shapes

# Version 2 groups a level side's weights by block pair, {side}_blocks/pair_i/{temporal,
# mlp} (`engine.block_stack`); version 1 named each block on its own.
FORMAT = "harmonicrnn-model/2"
ASSETS = Path(__file__).resolve().parent.parent / "assets"
CHECKPOINTS = ASSETS / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINTS / "piano-realtime-2x"

log = logging.getLogger(__name__)


class CheckpointError(Exception):
    """A checkpoint is missing, partial, corrupt or of another format."""


@dataclasses.dataclass
class ModelCheckpoint:
    """A loaded model: its config, params pytree and model card."""

    config: ModelConfig
    params: dict
    card: dict
    path: Path

    @property
    def name(self) -> str:
        return self.card.get("name") or self.path.name


def _is_model_dir(path: Path) -> bool:
    return (path / "params").is_dir() and (path / "model").is_dir()


def write_params_and_meta(directory: str | Path, params: dict, meta: dict) -> Path:
    """Writes a params pytree (item `params`) and a JSON dict (item `model`) with orbax.

    `directory` must not exist yet. orbax writes into a temporary directory and renames
    it when complete, so an interrupted save leaves nothing that looks like a checkpoint.
    """
    directory = Path(directory).absolute()
    if directory.exists():
        raise CheckpointError(f"{directory} already exists; choose a new folder")
    with quiet_failed_save(), ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        checkpointer.save(
            directory,
            ocp.args.Composite(params=ocp.args.StandardSave(jax.device_get(params)), model=ocp.args.JsonSave(meta)),
        )
    return directory


# orbax before 0.12.8 refuses relative paths, so every path is made absolute here.


def read_meta(path: str | Path) -> dict:
    """The JSON item `model` of a checkpoint directory, without loading weights; for a
    model checkpoint {"format", "config", "card"}."""
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        restored = checkpointer.restore(Path(path).absolute(), ocp.args.Composite(model=ocp.args.JsonRestore()))
    return restored["model"]


def read_params(path: str | Path) -> dict:
    """The params item of a checkpoint directory as a pytree of float32 numpy arrays
    (weights stored in bfloat16, `harmonic export --bfloat16`, are widened)."""
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        restored = checkpointer.restore(Path(path).absolute(), ocp.args.Composite(params=ocp.args.StandardRestore()))
    return jax.tree.map(lambda leaf: np.asarray(leaf, np.float32), restored["params"])


def model_meta(config: ModelConfig, card: dict | None = None) -> dict:
    """The JSON item `model` of a model checkpoint: format, config and card."""
    return {"format": FORMAT, "config": config.to_dict(), "card": dict(card or {})}


def save_model(directory: str | Path, config: ModelConfig, params: dict, card: dict | None = None) -> Path:
    """Writes params, config and card to `directory` (which must not exist yet)."""
    return write_params_and_meta(directory, params, model_meta(config, card))


def _is_closed_loop_callback(error: BaseException | None) -> bool:
    """Whether an error is tensorstore's completion callback finding orbax's event loop
    closed (asyncio's call_soon_threadsafe raising 'Event loop is closed')."""
    if not isinstance(error, RuntimeError) or str(error) != "Event loop is closed":
        return False
    return any(frame.name == "call_soon_threadsafe" for frame in traceback.extract_tb(error.__traceback__))


def quiet_closed_loop_reports() -> None:
    """Keeps tensorstore's late callbacks after a failed restore or save off the terminal.

    orbax reads and writes in an event loop of its own and closes it as soon as one read
    or write fails (a damaged file; a disk that fills during a save); the operations still
    in flight complete later in tensorstore's threads, and each one's callback into the
    closed loop is reported through sys.unraisablehook (or, from some threads,
    sys.excepthook): a screen of "Event loop is closed" tracebacks around the one-line
    error. Nothing is lost by dropping them (the restore or save has already failed).
    Installed before reading or writing, for the rest of the process: a callback can fire
    while the failure's exception is still on its way to us. Every other report goes to
    the previous hook.
    """
    previous_unraisable, previous_except = sys.unraisablehook, sys.excepthook
    if getattr(previous_unraisable, "quiets_closed_loop", False):
        return

    def unraisable_hook(unraisable) -> None:
        if not _is_closed_loop_callback(unraisable.exc_value):
            previous_unraisable(unraisable)

    def except_hook(kind, error, trace) -> None:
        if not _is_closed_loop_callback(error):
            previous_except(kind, error, trace)

    unraisable_hook.quiets_closed_loop = True  # type: ignore[attr-defined]
    sys.unraisablehook, sys.excepthook = unraisable_hook, except_hook


class _DropFailedSaveThreads(logging.Filter):
    """Drops orbax's reports of its background threads once a save has failed: the failure
    reaches the user as one line, while the threads of that save (metadata writes) still
    run, fail on the full disk or meet the interpreter's shutdown, and absl logs each with
    a traceback ("_SignalingThread.run() raised an exception"). Other records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "raised an exception" not in record.getMessage()


_FAILED_SAVE_THREADS = _DropFailedSaveThreads()


@contextlib.contextmanager
def quiet_failed_save() -> Iterator[None]:
    """Around an orbax save (a model's or a run's step): should it fail (a disk that fills
    during the write), the one-line error is all the user sees, not the late reports of
    tensorstore's callbacks (`quiet_closed_loop_reports`) and of orbax's threads."""
    quiet_closed_loop_reports()
    try:
        yield
    except BaseException:
        logging.getLogger("absl").addFilter(_FAILED_SAVE_THREADS)
        raise


class _DropFailedReads(logging.Filter):
    """Drops asyncio's "Task exception was never retrieved" reports of restores that have
    failed already, from the folders in `folders`: orbax reads each array in a task of its
    own and raises the first read's error, which reaches the user as one line; the other
    reads of the damaged file fail too, and asyncio reports each with a traceback once its
    task is collected (seen on a slow machine). Other records pass. One filter serves every
    failed load of the process (`_FAILED_READS`)."""

    def __init__(self):
        super().__init__()
        self.folders: set[str] = set()

    def add(self, folder: Path) -> None:
        logging.getLogger("asyncio").addFilter(self)  # a filter already there is not added twice
        self.folders.add(str(Path(folder).resolve()))

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return error is None or not any(folder in str(error) for folder in self.folders)


_FAILED_READS = _DropFailedReads()


def _load_dir(path: Path) -> ModelCheckpoint:
    quiet_closed_loop_reports()
    try:
        meta = read_meta(path)
    except Exception as error:  # orbax raises many types for damaged files
        raise CheckpointError(f"{path}: cannot read the model description ({error})") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        if isinstance(found, str) and found.startswith("harmonicrnn-model/"):
            raise CheckpointError(
                f"{path}: saved in checkpoint format {found!r}; this version reads {FORMAT!r} "
                "(block weights are grouped by block pair since format 2)"
            )
        raise CheckpointError(f"{path}: not a HarmonicRNN model checkpoint (format {found!r})")
    try:
        config = ModelConfig.from_dict(meta["config"])
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(f"{path}: its model config is invalid: {error}") from error
    try:
        params = read_params(path)
    except Exception as error:
        _FAILED_READS.add(path)
        raise CheckpointError(f"{path}: the weights are damaged ({error})") from error
    if flat_shapes(params) != expected_shapes(config):
        raise CheckpointError(f"{path}: the weights do not match the model config saved with them")
    if not all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(params)):
        raise CheckpointError(f"{path}: the weights contain NaN or infinite values")
    return ModelCheckpoint(config, params, dict(meta.get("card", {})), path)


def step_directories(run_dir: Path) -> list[Path]:
    """Completed step directories of a run folder, newest first."""
    steps = [p for p in run_dir.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name)]
    return sorted(steps, key=lambda p: int(p.name), reverse=True)


def load_model(path: str | Path | None = None) -> ModelCheckpoint:
    """Loads a model checkpoint.

    Args:
      path: a model directory, a step directory of a training run, or a folder of step
        directories (the newest that loads is used; a damaged newer one is skipped with
        a warning). None loads the shipped default, `DEFAULT_CHECKPOINT`.

    Raises:
      CheckpointError: with a message a user can act on.
    """
    path = DEFAULT_CHECKPOINT if path is None else Path(path).expanduser()
    if not path.exists():
        hint = " (the shipped default model is missing from assets/)" if path == DEFAULT_CHECKPOINT else ""
        raise CheckpointError(f"no checkpoint at {path}{hint}")
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file; a checkpoint is a folder")
    if _is_model_dir(path):
        return _load_dir(path)
    candidates = [p for p in step_directories(path) if _is_model_dir(p)]
    if not candidates and (path / "checkpoints").is_dir():
        candidates = [p for p in step_directories(path / "checkpoints") if _is_model_dir(p)]
    if not candidates:
        raise CheckpointError(f"{path} holds no model checkpoint (no params/ and model/ folders)")
    errors = []
    for candidate in candidates:
        try:
            return _load_dir(candidate)
        except CheckpointError as error:
            log.warning("skipping damaged checkpoint: %s", error)
            errors.append(str(error))
    raise CheckpointError("no step of this run loads:\n  " + "\n  ".join(errors))


def shipped_checkpoints() -> list[Path]:
    """The model directories shipped in assets/checkpoints, default first."""
    if not CHECKPOINTS.is_dir():
        return []
    found = sorted(p for p in CHECKPOINTS.iterdir() if _is_model_dir(p))
    return sorted(found, key=lambda p: p != DEFAULT_CHECKPOINT)
