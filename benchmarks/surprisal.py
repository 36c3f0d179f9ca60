"""Where the watchdog's noise threshold belongs: each model's surprisal (bits per sample,
teacher-forced), averaged over one-second windows as the watchdog averages it, on real test
clips and on takes (issue 15: a model that runs away into a loud wash at temperature 1).

    python -m benchmarks.surprisal MODEL [MODEL ...] --data /tmp/piano-eval --takes a.flac b.flac

Every take is fed to every model, so a take counts as a runaway for the model that played it:
name the takes so that the table says which is which.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import jax
import numpy as np

from benchmarks.report import publish_results
from engine import model, mulaw
from engine.audio_file import read_audio
from engine.checkpoint import ModelCheckpoint, load_model
from engine.config import ModelConfig
from engine.watchdog import WatchdogSettings
from training.data.loader import Split
from training.loss import LN2, token_nll

WINDOW = WatchdogSettings().window_samples


@functools.partial(jax.jit, static_argnames="config")
def _surprisal(params: dict, config: ModelConfig, tokens: jax.Array) -> jax.Array:
    """tokens int32 [1, T] -> float32 [T]: -log2 p(token_t | tokens < t)."""
    return token_nll(model.forward(params, config, tokens), tokens)[0] / LN2


def window_means(checkpoint: ModelCheckpoint, audio: np.ndarray) -> np.ndarray:
    """float [T] audio -> float [T // WINDOW]: the mean surprisal of each whole window."""
    usable = len(audio) // WINDOW * WINDOW // checkpoint.config.total_pooling * checkpoint.config.total_pooling
    tokens = mulaw.encode(audio[:usable]).astype(np.int32)[None]
    bits = np.asarray(_surprisal(checkpoint.params, checkpoint.config, tokens))
    return bits[: len(bits) // WINDOW * WINDOW].reshape(-1, WINDOW).mean(axis=1)


def row(name: str, fed: str, means: np.ndarray, noise_bits: float) -> list[str]:
    p50, p99, top = np.percentile(means, [50, 99, 100])
    return [
        name,
        fed,
        f"{len(means):,}",
        f"{p50:.2f}",
        f"{p99:.2f}",
        f"{top:.2f}",
        f"{np.mean(means > noise_bits):.0%}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model checkpoint folders")
    parser.add_argument("--data", required=True, help="a built data set whose test clips are the real music")
    parser.add_argument("--clips", type=int, default=160, help="real clips (random, fixed seed; default 160)")
    parser.add_argument("--takes", nargs="*", default=[], help="takes (audio files), each voice fed apart")
    parser.add_argument("--no-doc", action="store_true", help="print the table only; do not write docs/results.md")
    args = parser.parse_args()
    noise_bits = WatchdogSettings().noise_bits
    split = Split(Path(args.data), "test")
    chosen = np.sort(np.random.default_rng(0).permutation(len(split))[: args.clips])
    real = [mulaw.decode(split.tokens[i, : split.lengths[i]].astype(np.int32)) for i in chosen]
    takes = {Path(path).name: read_audio(path, mono=False) for path in args.takes}
    if short := [name for name, voices in takes.items() if voices.shape[1] < WINDOW]:
        parser.error(f"{', '.join(short)}: shorter than one {WINDOW / mulaw.SAMPLE_RATE:g} s window")
    rows = []
    for path in args.models:
        checkpoint = load_model(path)
        name = Path(path).name
        rows.append(
            row(
                name, f"{len(real)} real clips", np.concatenate([window_means(checkpoint, a) for a in real]), noise_bits
            )
        )
        for take, voices in takes.items():
            rows.append(row(name, take, np.concatenate([window_means(checkpoint, v) for v in voices]), noise_bits))
        print("\n".join(" | ".join(r) for r in rows[-1 - len(takes) :]), flush=True)
    header = ["model", "fed", "windows", "median bits", "99th percentile", "highest", f"above {noise_bits:g} bits"]
    note = (
        f"Each model's mean surprisal (-log2 p of each sample given those before, teacher-forced) over windows "
        f"of {WINDOW / mulaw.SAMPLE_RATE:g} s, as the watchdog averages it; real clips from the test split of "
        f"`{args.data}`, every voice of a take apart. *above*: the share of windows the watchdog's noise rule "
        "(`WatchdogSettings.noise_bits`) calls noise."
    )
    publish_results(
        "surprisal", "Surprisal of real music and of runaways (issue 15)", note, header, rows, write=not args.no_doc
    )


if __name__ == "__main__":
    main()
