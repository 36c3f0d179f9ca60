"""JAX's persistent compilation cache in the user cache directory.

The generator's programs take seconds to compile on a small CPU; with the cache a
second start of `harmonic play` (or of the app) loads them from disk instead.

    from engine.compile_cache import enable_compile_cache
    enable_compile_cache()        # before the first jit call that should be cached

The folder is `platformdirs.user_cache_dir("harmonicrnn")/jax`; the environment
variable HARMONIC_COMPILE_CACHE overrides it, and HARMONIC_COMPILE_CACHE=off disables
the cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import platformdirs

_enabled: Path | None = None


def default_cache_dir() -> Path | None:
    """The cache folder in use by default (None when disabled by the environment)."""
    override = os.environ.get("HARMONIC_COMPILE_CACHE")
    if override is not None:
        return None if override.strip().lower() in ("", "0", "off", "none") else Path(override).expanduser()
    return Path(platformdirs.user_cache_dir("harmonicrnn")) / "jax"


def enable_compile_cache(directory: str | Path | None = None) -> Path | None:
    """Turns on JAX's persistent compilation cache; idempotent.

    Args:
      directory: where to keep compiled programs; None for `default_cache_dir()`.

    Returns:
      The folder in use, or None if caching is disabled or the folder is not writable
      (caching is an optimisation: it never stops generation).
    """
    global _enabled
    directory = default_cache_dir() if directory is None else Path(directory)
    if directory is None:
        return None
    if _enabled == directory:
        return directory
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    # Cache every program, however small or quick to compile: our per-chunk scans
    # compile in a few seconds each, below JAX's default 1 s / size thresholds' intent.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    _enabled = directory
    return directory
