"""`harmonic generate`: render a take to a WAV or FLAC file (no audio device needed).

The model and sampling options here are shared with `harmonic play`.
"""

from __future__ import annotations

import argparse
import math
import secrets
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from engine.errors import UserError
from engine.mulaw import SAMPLE_RATE
from engine.take_file import TakeFile


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that choose the model, the sampling and the seed (shared with `play`)."""
    group = parser.add_argument_group("model and sampling")
    source = group.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", metavar="C", help="model checkpoint folder (default: the shipped model)")
    source.add_argument("--preset", metavar="NAME", help="random weights of a preset instead (speed tests; sounds like noise)")
    group.add_argument("--temperature", type=float, default=1.0, metavar="T", help="sampling temperature, 0 = greedy (default 1)")
    group.add_argument("--top-p", type=float, default=1.0, metavar="P", help="nucleus sampling mass in (0, 1] (default 1: off)")
    group.add_argument("--seed", type=int, default=None, metavar="N", help="random seed; the same seed repeats a take (default: new, printed)")
    group.add_argument("--voices", type=int, default=1, metavar="V", help="independent streams at once (default 1)")
    group.add_argument("--chunk-ms", type=float, default=50.0, help="audio per compiled chunk in ms (default 50)")
    prime = group.add_mutually_exclusive_group()
    prime.add_argument("--prime", metavar="FILE", help="seed the take with an audio file")
    prime.add_argument("--prime-mic", type=float, metavar="SECONDS", help="seed the take with this many seconds from the microphone")
    group.add_argument("--input-device", metavar="DEV", help="microphone for --prime-mic: index or name part (see `harmonic devices`)")
    group.add_argument("--with-prime", action="store_true", help="the output starts with the seed audio")


def build_generator(args: argparse.Namespace):
    """A primed `Generator` from the shared options; prints the seed. UserError on bad input."""
    import jax

    from engine import model
    from engine.checkpoint import CheckpointError, ModelCheckpoint, load_model
    from engine.compile_cache import enable_compile_cache
    from engine.generator import GenerationSettings, Generator

    enable_compile_cache()
    seed = secrets.randbelow(2**31) if args.seed is None else args.seed
    try:
        settings = GenerationSettings(
            temperature=args.temperature,
            top_p=args.top_p,
            seed=seed,
            voices=args.voices,
            chunk_ms=args.chunk_ms,
            include_prime=args.with_prime,
        )
    except ValueError as error:
        raise UserError(str(error)) from None
    prime, prime_rate = read_prime(args)
    try:
        if args.preset:
            config = model.preset(args.preset)
            checkpoint = ModelCheckpoint(config, model.init_params(config, jax.random.key(0)), {"name": f"random {args.preset}"}, Path(args.preset))
        else:
            checkpoint = load_model(args.checkpoint)
    except (CheckpointError, ValueError) as error:
        raise UserError(str(error)) from None
    generator = Generator(checkpoint, settings)
    if prime is not None:
        from tqdm import tqdm

        generator.prime(prime, prime_rate)
        with tqdm(total=100, bar_format="priming {percentage:3.0f}% [{elapsed}<{remaining}]") as bar:
            generator.start(lambda done, total: bar.update(100 * done / total - bar.n))
    print(f"model: {checkpoint.name}; seed {seed}; {settings.voices} voice(s); temperature {settings.temperature}, top-p {settings.top_p}"
          + (f"; primed with {generator.prime_samples / SAMPLE_RATE:.2f} s" if prime is not None else ""))
    return generator


def read_prime(args: argparse.Namespace) -> tuple[np.ndarray | None, int]:
    """The seed audio (mono float32) and its rate, from --prime or --prime-mic."""
    if args.prime:
        from engine.audio_file import read_audio

        return read_audio(args.prime), SAMPLE_RATE
    if args.prime_mic:
        from engine.audio import AudioUnavailable, record

        device = args.input_device
        print(f"recording {args.prime_mic:g} s from the microphone ...", flush=True)
        try:
            audio = record(args.prime_mic, device=int(device) if device and device.isdigit() else device)
        except AudioUnavailable as error:
            raise UserError(str(error)) from None
        return audio, SAMPLE_RATE
    return None, SAMPLE_RATE


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("generate", help="generate audio into a WAV or FLAC file")
    parser.add_argument("--seconds", type=float, default=4.0, metavar="S", help="seconds of new audio (default 4)")
    parser.add_argument("--out", required=True, metavar="FILE", help="output file, .wav or .flac (one channel per voice)")
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Generates into a `TakeFile` chunk by chunk; Ctrl-C keeps what was generated (exit 130)."""
    from tqdm import tqdm

    if not 0 < args.seconds < math.inf:  # also refuses nan
        raise UserError(f"--seconds must be a number > 0, got {args.seconds}")
    interrupted = threading.Event()

    def on_interrupt(signum, frame) -> None:
        # Python raises a signal's exception wherever the main thread is, a garbage
        # collector callback included (JAX registers one), where it is printed and
        # dropped: seen once in 25 Ctrl-Cs during compilation. The flag stops the take at
        # the next chunk all the same, so that dropped exception is not reported either.
        interrupted.set()
        raise KeyboardInterrupt

    def report_unraisable(unraisable, report=sys.unraisablehook) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            report(unraisable)

    signal.signal(signal.SIGINT, on_interrupt)
    sys.unraisablehook = report_unraisable
    with TakeFile(args.out) as take:  # the destination is checked before the model loads
        generator = build_generator(args)
        began = time.perf_counter()
        total = int(round(args.seconds * SAMPLE_RATE)) + (generator.prime_samples if args.with_prime else 0)
        bar_format = "{l_bar}{bar}| {n:.2f}/{total:.2f} s of audio [{elapsed}<{remaining}]"
        try:
            with tqdm(total=total / SAMPLE_RATE, desc="generating", bar_format=bar_format) as bar:
                for chunk in generator.chunks(total):
                    if interrupted.is_set():
                        raise KeyboardInterrupt
                    take.write(chunk)
                    bar.n = take.seconds
                    bar.refresh()
        except KeyboardInterrupt:
            # A second Ctrl-C must not interrupt the file being finished.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            if take.frames:
                take.finish()
            print(f"harmonic generate: stopped; kept {take.seconds:.2f} s in {args.out}" if take.frames
                  else "harmonic generate: stopped before any audio; no file written", file=sys.stderr)
            return 130
        take.finish()
    elapsed = time.perf_counter() - began
    rtf = generator.realtime_factor
    print(f"wrote {args.out}: {take.seconds:.2f} s x {generator.voices} voice(s) in {elapsed:.1f} s")
    print(f"first chunk (load/compile): {generator.first_chunk_seconds:.2f} s; "
          + (f"real-time factor: {rtf:.2f}x per voice ({rtf * generator.voices:.2f}x all voices)" if rtf else "real-time factor: n/a (too short)"))
    return 0
