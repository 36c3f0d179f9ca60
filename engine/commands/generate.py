"""`harmonic generate`: render a take to a WAV or FLAC file (no audio device needed).

The model and sampling options here are shared with `harmonic play`.
"""

from __future__ import annotations

import argparse
import secrets
import time
from pathlib import Path

import numpy as np

from engine.errors import UserError
from engine.mulaw import SAMPLE_RATE

FORMATS = {".wav": "WAV", ".flac": "FLAC"}


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
        generator.prime(prime, prime_rate)
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


def output_format(path: str) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(f"{path}: the output must end in .wav or .flac")
    return fmt


def write_audio(path: str, audio: np.ndarray) -> None:
    """Writes float32 [voices, n] as a 16 kHz file with one channel per voice."""
    import soundfile

    fmt = output_format(path)
    subtype = "FLOAT" if fmt == "WAV" else "PCM_24"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.clip(audio.T, -1, 1), SAMPLE_RATE, format=fmt, subtype=subtype)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("generate", help="generate audio into a WAV or FLAC file")
    parser.add_argument("--seconds", type=float, default=4.0, metavar="S", help="seconds of new audio (default 4)")
    parser.add_argument("--out", required=True, metavar="FILE", help="output file, .wav or .flac (one channel per voice)")
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    output_format(args.out)  # fail before the model loads
    if args.seconds <= 0:
        raise UserError("--seconds must be > 0")
    generator = build_generator(args)
    began = time.perf_counter()
    total = args.seconds + (generator.prime_samples / SAMPLE_RATE if args.with_prime else 0.0)
    bar_format = "{l_bar}{bar}| {n:.2f}/{total:.2f} s of audio [{elapsed}<{remaining}]"
    with tqdm(total=total, desc="generating", bar_format=bar_format) as bar:
        def progress(done: int, total: int) -> None:
            bar.n = done / SAMPLE_RATE
            bar.refresh()

        audio = generator.render(args.seconds, progress)
    elapsed = time.perf_counter() - began
    write_audio(args.out, audio)
    rtf = generator.realtime_factor
    print(f"wrote {args.out}: {audio.shape[1] / SAMPLE_RATE:.2f} s x {audio.shape[0]} voice(s) in {elapsed:.1f} s")
    print(f"first chunk (load/compile): {generator.first_chunk_seconds:.2f} s; "
          + (f"real-time factor: {rtf:.2f}x per voice ({rtf * generator.voices:.2f}x all voices)" if rtf else "real-time factor: n/a (too short)"))
    return 0
