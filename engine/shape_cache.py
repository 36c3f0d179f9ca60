"""The weight shapes a model config implies, remembered on disk.

Loading a checkpoint checks its weights against the shapes its config implies
(`engine.checkpoint`). Tracing flax's init for those shapes (`engine.model.param_shapes`)
takes about a second on a small CPU, half of a warm start of `harmonic play`. The shapes
depend only on the config and on the code that defines the model, so they are kept in the
compile cache's folder (`engine.compile_cache`) under a hash of both and read back in a
millisecond; a changed engine/ gives another key, never stale shapes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import jax

from engine.compile_cache import default_cache_dir
from engine.config import ModelConfig
from engine.model import param_shapes

ENGINE = Path(__file__).resolve().parent


def flat_shapes(params) -> dict[str, list[int]]:
    """{"['root']['inner']...": shape} of a params pytree (arrays or shape structs)."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return {jax.tree_util.keystr(path): list(leaf.shape) for path, leaf in leaves}


def _key(config: ModelConfig) -> str:
    digest = hashlib.sha256(config.to_json().encode())
    for source in sorted(ENGINE.glob("*.py")):  # the model's code: any change is a new key
        digest.update(source.read_bytes())
    return digest.hexdigest()[:32]


def expected_shapes(config: ModelConfig) -> dict[str, list[int]]:
    """`flat_shapes(param_shapes(config))`, from the cache folder when it holds them."""
    folder = default_cache_dir()
    path = None if folder is None else folder / "param-shapes" / f"{_key(config)}.json"
    if path is not None and path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass  # a damaged entry is computed and written again
    shapes = flat_shapes(param_shapes(config))
    if path is not None:
        try:  # an optimisation: a read-only or full cache folder never stops a load
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.partial")
            partial.write_text(json.dumps(shapes))
            partial.replace(path)
        except OSError:
            pass
    return shapes
