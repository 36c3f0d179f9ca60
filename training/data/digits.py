"""The spoken-digits set (SC09-like): "zero".."nine", 1 s clips at 16 kHz, labelled.

Voices come from the machine's speech synthesizers: every English espeak-ng voice
(accents) with each of espeak-ng's voice variants, plus flite's voices where flite is
installed (mbrola is not packaged on this Debian). Each (voice, word) take gets a random
pitch, rate and level. The split is by voice: test and valid voices are never heard in
training. Clips are centred in 1 s and padded with silence.
"""

from __future__ import annotations

import concurrent.futures as futures
import io
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile
import soxr
from tqdm import tqdm

from training.data.manifest import SAMPLE_RATE, DatasetWriter, assign_splits

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CLIP_LEN = SAMPLE_RATE  # 1 s
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
SYNTHESIZERS = ("espeak", "flite")


def espeak_voices() -> list[str]:
    """espeak-ng English voices x variants, e.g. "en-us", "en-us+Adam"."""
    if not shutil.which("espeak-ng"):
        return []
    bases = []
    for line in subprocess.run(["espeak-ng", "--voices=en"], capture_output=True, text=True).stdout.splitlines()[1:]:
        cols = line.split()
        # Columns: Pty Language Age/Gender VoiceName File ...; skip mbrola voices (mb/).
        if len(cols) >= 5 and cols[1].startswith("en") and not cols[4].startswith("mb/") and cols[1] not in bases:
            bases.append(cols[1])
    variants = []
    for line in subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True).stdout.splitlines()[
        1:
    ]:
        cols = line.split()
        if len(cols) >= 5 and cols[4].startswith("!v/"):
            variants.append(cols[4][3:])
    return [f"espeak:{b}" for b in bases] + [f"espeak:{b}+{v}" for b in bases for v in variants]


def flite_voices() -> list[str]:
    if not shutil.which("flite"):
        return []
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout
    have = set(out.replace("Voices available:", "").split())
    return [f"flite:{v}" for v in FLITE_VOICES if v in have]


def all_voices(synthesizers: tuple[str, ...] = SYNTHESIZERS) -> list[str]:
    """Every installed voice of these synthesizers, as "synthesizer:voice"."""
    return [v for v in espeak_voices() + flite_voices() if v.split(":", 1)[0] in synthesizers]


def synthesize(voice: str, word: str, pitch: float, rate: float) -> np.ndarray:
    """Speaks `word`; returns float32 mono at 16 kHz. pitch and rate in [0, 1]."""
    engine, name = voice.split(":", 1)
    if engine == "espeak":
        cmd = [
            "espeak-ng",
            "-v",
            name,
            "-p",
            str(int(20 + 60 * pitch)),
            "-s",
            str(int(120 + 80 * rate)),
            "--stdout",
            word,
        ]
        raw = subprocess.run(cmd, capture_output=True, check=True, timeout=30).stdout
        audio, sr = soundfile.read(io.BytesIO(raw), dtype="float32")
    elif engine == "flite":
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "w.wav")
            cmd = [
                "flite",
                "-voice",
                name,
                "-t",
                word,
                "-o",
                path,
                "--setf",
                f"duration_stretch={1.25 - 0.5 * rate:.3f}",
                "--setf",
                f"int_f0_target_mean={80 + 120 * pitch:.1f}",
            ]
            subprocess.run(cmd, capture_output=True, check=True, timeout=30)
            audio, sr = soundfile.read(path, dtype="float32")
    else:
        raise ValueError(f"unknown synthesizer {engine!r}")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if sr != SAMPLE_RATE:
        audio = soxr.resample(audio, sr, SAMPLE_RATE, quality="HQ")
    return np.asarray(audio, np.float32)


def centre(audio: np.ndarray, length: int = CLIP_LEN, threshold: float = 0.02) -> np.ndarray:
    """Trims leading/trailing silence and centres the word in `length` samples."""
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 0:
        loud = np.flatnonzero(np.abs(audio) > threshold * peak)
        audio = audio[max(0, loud[0] - 160) : loud[-1] + 160]
    if len(audio) > length:
        start = (len(audio) - length) // 2
        audio = audio[start : start + length]
    out = np.zeros(length, np.float32)
    start = (length - len(audio)) // 2
    out[start : start + len(audio)] = audio
    return out


def _take(job):
    voice, word, pitch, rate, level = job
    try:
        audio = synthesize(voice, word, pitch, rate)
    except Exception as error:
        return job, None, str(error)
    return job, centre(audio) * level, None


def build_digits(
    out: str | Path,
    limit: int = 0,
    takes: int = 1,
    seed: int = 0,
    scale_mode: str = "minmax",
    workers: int = 0,
    progress: bool = True,
    synthesizers: tuple[str, ...] = SYNTHESIZERS,
) -> dict:
    """Builds the digits set into `out`; returns its manifest.

    Args:
      limit: at most this many clips (0: every voice), voices spread over the splits.
      takes: random (pitch, rate, level) takes per voice and word.
      synthesizers: whose voices to use; a voice keeps its split whichever others are chosen, so a set of one
        synthesizer tests a classifier trained on the other on voices of a synthesizer it never heard.
    """
    voices = all_voices(synthesizers)
    if not voices:
        raise RuntimeError(f"no voices of {', '.join(synthesizers)} found: install espeak-ng and flite (scripts/setup)")
    splits = assign_splits(all_voices())
    if limit:
        wanted = max(3, -(-limit // (len(WORDS) * takes)))
        shuffler = random.Random(seed)
        by_split = {s: [v for v in voices if splits[v] == s] for s in ("train", "valid", "test")}
        for group in by_split.values():
            shuffler.shuffle(group)
        held_out = max(1, round(0.1 * wanted))  # voices each for valid and test
        chosen = by_split["valid"][:held_out] + by_split["test"][:held_out]
        chosen += by_split["train"][: max(1, wanted - len(chosen))]
        voices = chosen
    rng = np.random.default_rng(seed)
    jobs = []
    for voice in voices:
        for word in WORDS:
            for _ in range(takes):
                pitch, rate = rng.uniform(0, 1, 2)
                level = float(10 ** (rng.uniform(-12, 0) / 20))  # -12..0 dB (visible with --scale peak/none)
                jobs.append((voice, word, float(pitch), float(rate), level))
    if limit and len(jobs) > limit:
        # Keep every held-out voice's clips; trim training clips.
        held = [j for j in jobs if splits[j[0]] != "train"][: limit // 2]
        jobs = held + [j for j in jobs if splits[j[0]] == "train"][: limit - len(held)]
    writer = DatasetWriter(out, CLIP_LEN, "digits", scale_mode)
    failed = []
    workers = workers or max(2, os.cpu_count() or 1)
    with futures.ThreadPoolExecutor(workers) as pool:  # the synthesizers are subprocesses
        for job, audio, error in tqdm(
            pool.map(_take, jobs), total=len(jobs), desc="digits", unit="clip", disable=not progress
        ):
            if audio is None:
                failed.append({"voice": job[0], "word": job[1], "error": error[:200]})
                continue
            writer.add_audio(splits[job[0]], audio, label=WORDS.index(job[1]), source=job[0])
    voices_per_split = {s: sorted({v for v in voices if splits[v] == s}) for s in ("train", "valid", "test")}
    return writer.finish(
        source="speech synthesis: " + ", ".join(sorted({v.split(":")[0] for v in voices})),
        words=list(WORDS),
        labels="word index: 0 = zero ... 9 = nine",
        voices=len(voices),
        test_voices=voices_per_split["test"],
        valid_voices=voices_per_split["valid"],
        takes_per_word=takes,
        variation="pitch, rate uniform per take; level -12..0 dB",
        failed=failed,
        split_by="voice",
    )
