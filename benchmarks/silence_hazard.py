"""How readily a model leaves digital silence: its probability, at each sample of a silent
run, that the next sample is not silence, and that it is a loud onset, against how long the
silence has lasted. Measured teacher-forced on real clips that hold the gaps between works
and on a take of the model's own (issue 15: takes that fall silent for seconds).

    python -m benchmarks.silence_hazard MODEL [MODEL ...] --data /tmp/piano-eval --take take.flac

A model that keeps time through a silence would raise its hazard towards the end of the
data's 0.5 s gaps; a flat hazard means the length of a silence it generates is left to
chance, with mean 1 / P(loud) samples between loud onsets.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.report import publish_results
from engine import model, mulaw
from engine.audio_file import read_audio
from engine.checkpoint import ModelCheckpoint, load_model
from engine.config import ModelConfig
from engine.mulaw import SILENCE
from training.data.loader import Split

LOUD = 0.01  # -40 dBFS: a sample above it starts a note, not a decay's last flicker
LOUD_CLASSES = np.abs(mulaw.decode(np.arange(mulaw.NUM_CLASSES))) > LOUD  # bool [256]
GAP_SAMPLES = 4800  # real clips used: those with a silent run of 0.3 s or more
SINCE_BINS = ((1, 800), (800, 4000), (4000, 8000), (8000, 16000), (16000, None))  # samples of silence so far


@functools.partial(jax.jit, static_argnames="config")
def _probabilities(params: dict, config: ModelConfig, batch: jax.Array) -> jax.Array:
    """batch int32 [1, T] -> float32 [T, 2]: P(not SILENCE), P(a LOUD_CLASSES class), given the samples before."""
    p = jax.nn.softmax(model.forward(params, config, batch), axis=-1)[0]
    return jnp.stack([1.0 - p[:, SILENCE], jnp.sum(jnp.where(LOUD_CLASSES, p, 0.0), axis=-1)], axis=-1)


def leave_probabilities(checkpoint: ModelCheckpoint, tokens: np.ndarray) -> np.ndarray:
    """tokens int [T] -> float [T', 2] (T' = T down to whole pooling steps): P(token_t != SILENCE),
    P(|token_t| > LOUD), each given tokens < t."""
    length = len(tokens) // checkpoint.config.total_pooling * checkpoint.config.total_pooling
    batch = jnp.asarray(tokens[None, :length], jnp.int32)
    return np.asarray(_probabilities(checkpoint.params, checkpoint.config, batch))


def silent_run_lengths(tokens: np.ndarray) -> np.ndarray:
    """int [T]: at sample t, how many samples before t in a row were SILENCE."""
    silent = tokens == SILENCE
    count = np.cumsum(silent)
    run_to = count - np.maximum.accumulate(np.where(silent, 0, count))  # silent samples in a row up to t
    return np.concatenate([[0], run_to[:-1]])


def hazard_rows(checkpoint: ModelCheckpoint | None, pieces: list[np.ndarray]) -> list[list[str]]:
    """One row per bin of SINCE_BINS: samples, mean P(leave), mean P(loud), mean wait for a loud
    onset; the model's probabilities, or with `checkpoint` None how often the pieces did so."""
    since, leave = [], []
    for tokens in pieces:
        if checkpoint is None:
            probabilities = np.stack([tokens != SILENCE, LOUD_CLASSES[tokens]], axis=-1).astype(np.float64)
        else:
            probabilities = leave_probabilities(checkpoint, tokens)
        since.append(silent_run_lengths(tokens)[: len(probabilities)])
        leave.append(probabilities)
    since_all, leave_all = np.concatenate(since), np.concatenate(leave)
    rows = []
    for low, high in SINCE_BINS:
        chosen = (since_all >= low) & (since_all < (high or np.inf))
        if not chosen.any():
            continue
        p_leave, p_loud = leave_all[chosen].mean(axis=0)
        span = (
            f"{low / mulaw.SAMPLE_RATE:.2f}-{high / mulaw.SAMPLE_RATE:.2f} s"
            if high
            else f"> {low / mulaw.SAMPLE_RATE:.2f} s"
        )
        wait = 1.0 / (p_loud * mulaw.SAMPLE_RATE) if p_loud else np.inf
        rows.append([span, f"{chosen.sum():,}", f"{p_leave:.1e}", f"{p_loud:.1e}", f"{wait:.1f}"])
    return rows


def clips_with_gaps(data: str, split: str, count: int) -> list[np.ndarray]:
    """The first `count` clips of the split (0: all) that hold a silent run of GAP_SAMPLES or more."""
    clips = Split(Path(data), split)
    found = []
    for index in range(len(clips)):
        tokens = np.asarray(clips.tokens[index, : clips.lengths[index]])
        padded = np.concatenate([[0], (tokens == SILENCE).astype(np.int8), [0]])
        edges = np.diff(padded)
        runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
        if runs.size and runs.max() >= GAP_SAMPLES:
            found.append(tokens.astype(np.int32))
        if len(found) == count > 0:
            break
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model checkpoint folders")
    parser.add_argument("--data", required=True, help="a built data set whose clips hold gaps between works")
    parser.add_argument("--split", default="test")
    parser.add_argument("--clips", type=int, default=6, help="real clips fed to the models (of those with a 0.3 s gap)")
    parser.add_argument("--take", help="a take (audio file) fed to every model as well, each channel apart")
    parser.add_argument("--no-doc", action="store_true", help="print the table only; do not write docs/results.md")
    args = parser.parse_args()
    every = clips_with_gaps(args.data, args.split, 0)
    real = every[: args.clips]
    take = []
    if args.take:
        audio = read_audio(args.take, mulaw.SAMPLE_RATE, mono=False)
        take = [mulaw.encode(channel).astype(np.int32) for channel in audio]
    header = ["model", "fed", "silent so far", "samples", "P(not silence)", "P(loud)", "mean wait for loud (s)"]
    rows = [["(observed)", f"{len(every)} real clips", *row] for row in hazard_rows(None, every)]
    for path in args.models:
        checkpoint = load_model(path)
        for fed, pieces in ((f"{len(real)} real clips", real), (Path(args.take or "").name, take)):
            rows += [[Path(path).name, fed, *row] for row in hazard_rows(checkpoint, pieces)] if pieces else []
    note = (
        f"Per sample of a silent run (mu-law class {SILENCE}), teacher-forced: the model's probability that the "
        "next sample is not silence, and that it is louder than -40 dBFS (a note, not a decay's last flicker); "
        "*mean wait*: 1 / P(loud) in seconds. *(observed)*: how often the real clips did so, over every clip of "
        "the split that holds a silent run of 0.3 s or more."
    )
    publish_results("silence_hazard", "Leaving silence (issue 15)", note, header, rows, write=not args.no_doc)


if __name__ == "__main__":
    main()
