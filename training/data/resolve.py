"""The built data set behind a run's `--data`: the folder itself, or a cached build of
a folder of audio files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from platformdirs import user_cache_dir

from training.config import DataConfig
from training.data.audio_folder import build_folder
from training.data.manifest import DataError, is_dataset


def dataset_cache_dir(src: Path, clip_seconds: float, scale: str) -> Path:
    """Where an audio folder's build is kept ($HARMONIC_DATA_CACHE overrides the user cache)."""
    key = hashlib.sha1(f"{src.resolve()}|{clip_seconds}|{scale}".encode()).hexdigest()[:12]
    return Path(os.environ.get("HARMONIC_DATA_CACHE", user_cache_dir("harmonic"))) / "datasets" / f"{src.name}-{key}"


def resolve_dataset(data: DataConfig, progress: bool = True) -> Path:
    """A built data set for `data.path`: itself, or a cached build of an audio folder."""
    src = Path(data.path).expanduser()
    if not src.exists():
        raise DataError(f"no data at {src}")
    if is_dataset(src):
        return src
    cache = dataset_cache_dir(src, data.clip_seconds, data.scale)
    if is_dataset(cache):
        return cache

    print(f"{src} has no manifest: building it as a data set into {cache}", flush=True)
    manifest = build_folder(src, cache, data.clip_seconds, data.scale, progress=progress)
    if manifest["skipped"]:
        print(f"skipped {len(manifest['skipped'])} files, unreadable or too short (listed in {cache}/manifest.json)")
    return cache
