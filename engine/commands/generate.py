"""`harmonic generate`: render a take to a WAV or FLAC file (no audio device needed).

The model and sampling options here are shared with `harmonic play`.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import math
import secrets
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.commands.fx import add_fx_arguments, open_fx, print_notices
from engine.errors import UserError
from engine.mulaw import SAMPLE_RATE
from engine.take_file import TakeFile

if TYPE_CHECKING:
    from engine.effects.source import EffectsSource


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that choose the model, the sampling and the seed audio (shared with `play`)."""
    group = parser.add_argument_group("model and sampling")
    source = group.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", metavar="C", help="model checkpoint folder (default: the shipped model)")
    source.add_argument(
        "--preset", metavar="NAME", help="random weights of a preset instead (speed tests; sounds like noise)"
    )
    group.add_argument(
        "--temperature", type=float, default=1.0, metavar="T", help="sampling temperature, 0 = greedy (default 1)"
    )
    group.add_argument(
        "--top-p", type=float, default=1.0, metavar="P", help="nucleus sampling mass in (0, 1] (default 1: off)"
    )
    group.add_argument(
        "--seed",
        dest="random_seed",
        type=int,
        default=None,
        metavar="N",
        help="random seed of the sampler; the same one repeats a take (default: new, printed)",
    )
    group.add_argument("--voices", type=int, default=1, metavar="V", help="independent streams at once (default 1)")
    group.add_argument("--chunk-ms", type=float, default=50.0, help="audio per compiled chunk in ms (default 50)")
    prime = group.add_mutually_exclusive_group()
    prime.add_argument("--prime", metavar="FILE", help="seed audio: start the take from this audio file")
    prime.add_argument(
        "--prime-mic",
        type=float,
        metavar="SECONDS",
        help="seed audio: start the take from this many seconds recorded from the microphone",
    )
    group.add_argument(
        "--input-device", metavar="DEV", help="microphone for --prime-mic: index or name part (see `harmonic devices`)"
    )
    group.add_argument("--with-prime", action="store_true", help="the output starts with the seed audio")
    group.add_argument(
        "--watchdog",
        action="store_true",
        help="roll a voice that runs away into silence or noise back a second or more and resample it "
        "(generate drops the rolled-back audio; play crossfades; see engine/watchdog.py)",
    )


def build_generator(args: argparse.Namespace):
    """A primed `Generator` from the shared options; prints the random seed. UserError on bad input."""
    import jax

    from engine import model
    from engine.checkpoint import CheckpointError, ModelCheckpoint, load_model
    from engine.compile_cache import enable_compile_cache
    from engine.generator import GenerationSettings, Generator
    from engine.watchdog import WatchdogSettings

    enable_compile_cache()
    random_seed = secrets.randbelow(2**31) if args.random_seed is None else args.random_seed
    try:
        settings = GenerationSettings(
            temperature=args.temperature,
            top_p=args.top_p,
            random_seed=random_seed,
            voices=args.voices,
            chunk_ms=args.chunk_ms,
            include_prime=args.with_prime,
            watchdog=WatchdogSettings() if args.watchdog else None,
        )
    except ValueError as error:
        raise UserError(str(error)) from None
    prime, prime_rate = read_prime(args)
    try:
        if args.preset:
            config = model.preset(args.preset)
            checkpoint = ModelCheckpoint(
                config,
                model.init_params(config, jax.random.key(0)),
                {"name": f"random {args.preset}"},
                Path(args.preset),
            )
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
    print(
        f"model: {checkpoint.name}; random seed {random_seed}; {settings.voices} voice(s); "
        f"temperature {settings.temperature}, top-p {settings.top_p}"
        + ("; watchdog on" if settings.watchdog is not None else "")
        + (f"; primed with {generator.prime_samples / SAMPLE_RATE:.2f} s" if prime is not None else "")
    )
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
    parser.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="output file, .wav or .flac (one channel per voice; with --fx the voices' mix, processed)",
    )
    parser.add_argument(
        "--dry-out", metavar="FILE", help="with --fx, where the unprocessed take goes (default: OUT's name + .dry)"
    )
    add_model_arguments(parser)
    add_fx_arguments(parser)
    parser.set_defaults(run=run)


def dry_path(args: argparse.Namespace, out: str | None = None) -> Path | None:
    """Where --fx keeps the dry take: --dry-out, else "take.dry.wav" beside "take.wav"
    (`out`, default --out)."""
    if not args.fx:
        if args.dry_out:
            raise UserError("--dry-out goes with --fx (without effects --out is the dry take)")
        return None
    out_path = Path(out or args.out).expanduser()
    dry = (
        Path(args.dry_out).expanduser() if args.dry_out else out_path.with_name(f"{out_path.stem}.dry{out_path.suffix}")
    )
    if dry.resolve() == out_path.resolve():
        raise UserError(f"--dry-out and --out are both {out_path}; give the dry take another name")
    return dry


def run(args: argparse.Namespace) -> int:
    """Generates into a `TakeFile` chunk by chunk; Ctrl-C keeps what was generated (exit 130).
    With --fx, --out gets the voices' mix through the chain and its tail, and the dry take
    (all voices) goes to `dry_path`."""
    from tqdm import tqdm

    from engine.generator import SettledTake

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
    with contextlib.ExitStack() as files:  # destinations and chain are checked before the model loads
        take = files.enter_context(TakeFile(args.out))
        dry_take = files.enter_context(TakeFile(dry)) if (dry := dry_path(args)) else None
        chain = files.enter_context(open_fx(args)) if args.fx else None
        generator = build_generator(args)
        settled = SettledTake(generator)  # without --watchdog: the generator's chunks as they come
        source: SettledTake | EffectsSource
        if chain is None:
            source = settled
        else:
            from engine.effects.source import EffectsSource  # loads pedalboard: only for --fx

            assert dry_take is not None  # --fx gives both the chain and a dry path
            source = EffectsSource(settled, chain, args.fx_tail, on_dry=dry_take.write)
        began = time.perf_counter()
        total = int(round(args.seconds * SAMPLE_RATE)) + (generator.prime_samples if args.with_prime else 0)
        shown = total / SAMPLE_RATE + (args.fx_tail if chain is not None else 0)
        bar_format = "{l_bar}{bar}| {n:.2f}/{total:.2f} s of audio [{elapsed}<{remaining}]"
        takes = [t for t in (take, dry_take) if t is not None]
        try:
            with tqdm(total=shown, desc="generating", bar_format=bar_format) as bar:
                for chunk in source.chunks(total):
                    if interrupted.is_set():
                        raise KeyboardInterrupt
                    take.write(chunk)
                    bar.n = take.seconds
                    bar.refresh()
                    print_notices(chain, bar.write)
        except KeyboardInterrupt:
            # A second Ctrl-C must not interrupt the files being finished.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            held = generator.unsettled()  # what the watchdog still held back stands: keep it too
            if chain is None and held.shape[1]:
                take.write(held)
            kept = [t for t in takes if t.frames]
            for kept_take in kept:
                kept_take.finish()
            kept_text = ", ".join(f"{t.seconds:.2f} s in {t.path}" for t in kept)
            print(
                f"harmonic generate: stopped; kept {kept_text}"
                if kept
                else "harmonic generate: stopped before any audio; no file written",
                file=sys.stderr,
            )
            return 130
        for finished in takes:
            finished.finish()
    elapsed = time.perf_counter() - began
    rtf = generator.realtime_factor
    if chain is None:
        print(f"wrote {args.out}: {take.seconds:.2f} s x {generator.voices} voice(s) in {elapsed:.1f} s")
    else:
        assert dry_take is not None  # --fx gives both the chain and a dry path
        print(
            f"wrote {args.out}: {take.seconds:.2f} s through {args.fx} ({args.fx_tail:g} s of it tail) "
            f"in {elapsed:.1f} s; the dry take: {dry_take.path}, "
            f"{dry_take.seconds:.2f} s x {generator.voices} voice(s)"
        )
    print(
        f"first chunk (load/compile): {generator.first_chunk_seconds:.2f} s; "
        + (
            f"real-time factor: {rtf:.2f}x per voice ({rtf * generator.voices:.2f}x all voices)"
            if rtf
            else "real-time factor: n/a (too short)"
        )
    )
    if generator.settings.watchdog is not None:
        print(watchdog_summary(generator))
    return 0


def watchdog_summary(generator) -> str:
    """One line: the watchdog's rollbacks in the take, then a line per runaway it gave up on."""
    rollbacks = generator.rollbacks
    counts = collections.Counter(rollback.drift.value for rollback in rollbacks)
    detail = ", ".join(f"{count} from {drift}" for drift, count in sorted(counts.items()))
    line = f"watchdog: {len(rollbacks)} rollback(s)" + (f" ({detail})" if detail else "")
    return "\n".join([line, *generator.watchdog_notices])
