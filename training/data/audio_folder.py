"""Any folder of audio files as a data set (docs/spec.md §6: the primary input).

Every file libsndfile can read (wav, flac, ogg, mp3, aiff, ...) is read by the shared
reader `engine.audio_file.read_audio` (mono, 16 kHz) and cut into clips of
`clip_seconds`; each clip is scaled (docs/spec.md §1) and mu-law encoded; the last short clip is
padded with silence and keeps its real length. Files are split train/valid/test by file,
so no file is in two splits. Unreadable files, and files shorter than the shortest clip
kept, are skipped and listed in the manifest with the reason, never fatal.
"""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.audio_file import AudioFileError, read_audio
from training.data.manifest import SAMPLE_RATE, DatasetWriter, assign_splits, clip_to_tokens

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf", ".opus"}


def cut_clips(audio: np.ndarray, clip_len: int, min_len: int) -> list[np.ndarray]:
    """Consecutive clips of clip_len; a last piece shorter than min_len is dropped."""
    clips = [audio[i : i + clip_len] for i in range(0, len(audio), clip_len)]
    return [c for c in clips if len(c) >= min_len]


def _encode_file(args):
    path, clip_len, min_len, scale_mode = args
    try:
        audio = read_audio(path)
    except AudioFileError as error:
        return path, None, str(error)
    if audio.size < min_len:  # it would give no clip: a skipped file, not a kept one that adds nothing
        return path, None, f"shorter than {min_len / SAMPLE_RATE:g} s ({audio.size / SAMPLE_RATE:.3f} s)"
    encoded = [clip_to_tokens(c, clip_len, scale_mode) for c in cut_clips(audio, clip_len, min_len)]
    return path, encoded, None


def find_audio(src: Path) -> list[Path]:
    return sorted(
        p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")
    )


def build_folder(
    src: str | Path,
    out: str | Path,
    clip_seconds: float = 8.0,
    scale_mode: str = "minmax",
    min_seconds: float = 0.25,
    limit: int = 0,
    workers: int = 0,
    progress: bool = True,
) -> dict:
    """Builds a data set from the audio files under `src`; returns the manifest.

    Every file with an audio suffix is tried; those that fail to read or are shorter
    than `min_seconds` are listed under "skipped" with the reason in the manifest (and
    printed by the command).
    """
    src = Path(src).expanduser()
    if not src.is_dir():
        raise FileNotFoundError(f"{src} is not a folder")
    files = find_audio(src)
    if limit:
        files = files[:limit]
    if not files:
        raise FileNotFoundError(f"no audio files under {src} (looked for {', '.join(sorted(AUDIO_SUFFIXES))})")
    clip_len = int(round(clip_seconds * SAMPLE_RATE))
    min_len = max(1, int(min_seconds * SAMPLE_RATE))
    rel = {f: str(f.relative_to(src)) for f in files}
    splits = assign_splits(list(rel.values()))
    writer = DatasetWriter(out, clip_len, "folder", scale_mode)
    skipped = []
    workers = workers or min(4, os.cpu_count() or 1)
    jobs = [(f, clip_len, min_len, scale_mode) for f in files]
    results = {}
    # spawn, not fork: this may run inside a process where JAX's threads are running.
    with futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for path, encoded, error in tqdm(
            pool.map(_encode_file, jobs, chunksize=1),
            total=len(jobs),
            desc="audio files",
            unit="file",
            disable=not progress,
        ):
            results[path] = (encoded, error)
    for path in files:  # in file order, so a build is reproducible
        encoded, error = results[path]
        if error is not None:
            skipped.append({"file": rel[path], "error": error})
            continue
        for tokens, length in encoded:
            writer.add_tokens(splits[rel[path]], tokens, length, source=rel[path])
    if writer.count() == 0:
        raise ValueError(f"none of the {len(files)} files under {src} gave a clip; skipped: {skipped[:5]}")
    return writer.finish(source=str(src.resolve()), files=len(files) - len(skipped), skipped=skipped, split_by="file")
