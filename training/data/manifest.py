"""The manifest of a data set directory and the writer that produces the arrays."""

from __future__ import annotations

import datetime
import io
import json
import zlib
from pathlib import Path

import numpy as np

from engine.mulaw import SAMPLE_RATE, SILENCE, encode, scale
from training.files import replacing, write_text

SPLITS = ("train", "valid", "test")
MANIFEST = "manifest.json"
FORMAT = "harmonicrnn-dataset/1"


class DataError(Exception):
    """A data set is missing, incomplete or malformed."""


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise DataError(f"{directory} is not a built data set (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is damaged: {error}") from error
    if manifest.get("format") != FORMAT:
        raise DataError(f"{path}: unknown data set format {manifest.get('format')!r}")
    return manifest


def is_dataset(directory: str | Path) -> bool:
    return (Path(directory) / MANIFEST).is_file()


def clip_to_tokens(audio: np.ndarray, clip_len: int, scale_mode: str) -> tuple[np.ndarray, int]:
    """A mono float clip (at most clip_len samples) -> (uint8 [clip_len] padded with
    silence, real length). Scaling (docs/spec.md §1) sees only the real samples."""
    audio = np.asarray(audio, np.float64)[:clip_len]
    tokens = np.full(clip_len, SILENCE, np.uint8)
    if audio.size:
        tokens[: audio.size] = encode(scale(audio, scale_mode)).astype(np.uint8)
    return tokens, int(audio.size)


class DatasetWriter:
    """Collects clips per split and writes the arrays and the manifest at the end."""

    def __init__(self, out: str | Path, clip_len: int, kind: str, scale_mode: str = "minmax"):
        self.out = Path(out)
        self.clip_len = clip_len
        self.kind = kind
        self.scale_mode = scale_mode
        self.clips: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
        self.lengths: dict[str, list[int]] = {s: [] for s in SPLITS}
        self.labels: dict[str, list[int]] = {s: [] for s in SPLITS}
        self.sources: dict[str, set[str]] = {s: set() for s in SPLITS}

    def add_tokens(self, split: str, tokens: np.ndarray, length: int, label: int = -1, source: str = "") -> None:
        self.clips[split].append(np.asarray(tokens, np.uint8))
        self.lengths[split].append(int(length))
        self.labels[split].append(int(label))
        if source:
            self.sources[split].add(source)

    def add_audio(self, split: str, audio: np.ndarray, label: int = -1, source: str = "") -> None:
        tokens, length = clip_to_tokens(audio, self.clip_len, self.scale_mode)
        self.add_tokens(split, tokens, length, label, source)

    def count(self) -> int:
        return sum(len(v) for v in self.clips.values())

    def finish(self, **extra) -> dict:
        """Writes `{split}_*.npy` and manifest.json. A rebuild first removes the old
        manifest; the arrays are written under temporary names and renamed together once
        all are complete, and the manifest comes last: a build stopped at any point (a
        kill, a full disk) leaves no data set, never one that looks finished."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / MANIFEST).unlink(missing_ok=True)
        arrays, splits = {}, {}
        for split in SPLITS:
            n = len(self.clips[split])
            lengths = np.asarray(self.lengths[split], np.int32)
            arrays[f"{split}_tokens.npy"] = np.stack(self.clips[split]) if n else np.zeros((0, self.clip_len), np.uint8)
            arrays[f"{split}_lengths.npy"] = lengths
            arrays[f"{split}_labels.npy"] = np.asarray(self.labels[split], np.int16)
            splits[split] = {
                "clips": n,
                "hours": round(float(lengths.sum()) / SAMPLE_RATE / 3600, 4),
                "sources": len(self.sources[split]),
            }
        with replacing(*(self.out / name for name in arrays)) as temporaries:
            for temporary, array in zip(temporaries, arrays.values(), strict=True):
                # Serialised in memory and written by Python: np.save to a file reports a full
                # disk only as "n requested and m written", without ENOSPC.
                buffer = io.BytesIO()
                np.save(buffer, array)
                temporary.write_bytes(buffer.getbuffer())
        manifest = {
            "format": FORMAT,
            "kind": self.kind,
            "sample_rate": SAMPLE_RATE,
            "clip_len": self.clip_len,
            "clip_seconds": self.clip_len / SAMPLE_RATE,
            "encoding": "mu-law 8 bit, mu=255, 256 classes, padding 128",
            "scale": self.scale_mode,
            "clips": sum(s["clips"] for s in splits.values()),
            "hours": round(sum(s["hours"] for s in splits.values()), 4),
            "splits": splits,
            "built": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            **extra,
        }
        write_text(self.out / MANIFEST, json.dumps(manifest, indent=2))
        return manifest


def split_of(key: str, valid: float = 0.1, test: float = 0.1) -> str:
    """A stable split for a source name (file, voice, piece): same name, same split."""
    u = (zlib.crc32(key.encode()) % 10_000) / 10_000
    if u < test:
        return "test"
    if u < test + valid:
        return "valid"
    return "train"


def assign_splits(keys: list[str], valid: float = 0.1, test: float = 0.1) -> dict[str, str]:
    """Splits by source; every split gets at least one source when there are >= 3."""
    keys = sorted(set(keys))
    result = {k: split_of(k, valid, test) for k in keys}
    if len(keys) >= 3:
        for split in ("test", "valid"):
            if split not in result.values():
                # Take a train source whose hash is closest to this split's range.
                train = sorted(
                    (k for k in keys if result[k] == "train"),
                    key=lambda k: __import__("zlib").crc32(k.encode()) % 10_000,
                )
                if len(train) > 1:
                    result[train[0 if split == "test" else -1]] = split
    return result
