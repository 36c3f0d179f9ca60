"""`harmonic play`: generate and play live until stopped (Ctrl-C), or for --seconds."""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np

from engine.commands.fx import add_fx_arguments, open_fx, print_notices
from engine.commands.generate import SAMPLE_RATE, add_model_arguments, build_generator, dry_path, watchdog_summary
from engine.errors import UserError
from engine.take_file import TakeFile


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("play", help="generate and play live until Ctrl-C")
    parser.add_argument(
        "--seconds", type=float, default=None, metavar="S", help="stop after S seconds of audio (default: until Ctrl-C)"
    )
    parser.add_argument("--device", metavar="DEV", help="output device: index or name part (see `harmonic devices`)")
    parser.add_argument("--latency", default="high", help='output latency: "low", "high" or seconds (default high)')
    parser.add_argument(
        "--buffer", type=float, default=1.0, metavar="SECONDS", help="generate this far ahead (default 1)"
    )
    parser.add_argument(
        "--prefill",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="buffer this much before the sound starts (default 0.5)",
    )
    parser.add_argument(
        "--save",
        metavar="FILE",
        help="also write everything generated (all voices) to a .wav/.flac "
        "(with --fx: what was played, and the dry take beside it, or at --dry-out)",
    )
    parser.add_argument("--dry-out", metavar="FILE", help="with --fx and --save, where the unprocessed take goes")
    parser.add_argument(
        "--status-every", type=float, default=1.0, metavar="SECONDS", help="print buffer health this often (default 1)"
    )
    add_model_arguments(parser)
    add_fx_arguments(parser)
    parser.set_defaults(run=run)


def _latency(value: str):
    if value in ("low", "high"):
        return value
    try:
        return float(value)
    except ValueError:
        raise UserError(f'--latency must be "low", "high" or seconds, got {value!r}') from None


def run(args: argparse.Namespace) -> int:
    """Plays until done or Ctrl-C; --save (and the dry take with --fx) and the chain are
    checked before the model loads."""
    if args.dry_out and not args.save:
        raise UserError("--dry-out goes with --save and --fx")
    with contextlib.ExitStack() as files:
        take = files.enter_context(TakeFile(args.save)) if args.save else None
        dry = dry_path(args, args.save) if args.save else None
        dry_take = files.enter_context(TakeFile(dry)) if dry else None
        chain = files.enter_context(open_fx(args)) if args.fx else None
        return _play(args, take, dry_take, chain)


def _play(args: argparse.Namespace, take: TakeFile | None, dry_take: TakeFile | None, chain) -> int:
    from engine.audio import AudioUnavailable, Player, resolve
    from engine.effects.source import EffectsSource

    device = int(args.device) if args.device and args.device.isdigit() else args.device
    try:
        resolve(device, "output")  # a clear message before the model loads
    except AudioUnavailable as error:
        raise UserError(str(error)) from None
    generator = build_generator(args)
    dry_chunks: list[np.ndarray] = []  # the dry take, with --fx and --save
    source = (
        generator
        if chain is None
        else EffectsSource(generator, chain, args.fx_tail, on_dry=dry_chunks.append if dry_take is not None else None)
    )
    player = Player(
        source,
        device=device,
        latency=_latency(args.latency),
        buffer_seconds=args.buffer,
        start_seconds=min(args.prefill, args.buffer),
        max_seconds=args.seconds,
        keep=take is not None,
    )
    began = time.perf_counter()
    try:
        player.start()
    except AudioUnavailable as error:
        raise UserError(str(error)) from None
    print(f"playing on {player.device_info.name} at {player.device_rate} Hz; Ctrl-C stops", flush=True)
    interrupted = False
    first_audio = None
    try:
        while not player.wait(timeout=args.status_every):
            if first_audio is None and player.played_seconds > 0:
                first_audio = time.perf_counter() - began
            _status(player)
            print_notices(chain)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        player.stop()
    if player.error is not None:
        raise UserError(f"playback failed: {player.error}")
    _status(player)
    print_notices(chain)
    rtf = player.realtime_factor
    print(
        f"{'stopped' if interrupted else 'done'}: played {player.played_seconds:.2f} s, underruns: {player.underruns}"
        + (f", real-time factor {rtf:.2f}x" if rtf else "")
        + (f", first audio after {first_audio:.2f} s" if first_audio else ""),
        flush=True,
    )
    if generator.settings.watchdog is not None:
        print(watchdog_summary(generator))
    if take is not None:
        audio = player.generated()
        take.write(audio)
        take.finish()
        print(f"wrote {args.save}: {audio.shape[1] / SAMPLE_RATE:.2f} s x {audio.shape[0]} voice(s)")
    if dry_take is not None and dry_chunks:
        dry_take.write(np.concatenate(dry_chunks, axis=1))
        dry_take.finish()
        print(f"wrote the dry take {dry_take.path}: {dry_take.seconds:.2f} s")
    return 0


def _status(player) -> None:
    rtf = player.realtime_factor
    print(
        f"[{player.state:>9}] buffer {player.fill_seconds:5.2f} s ({player.fill_fraction:4.0%}) "
        f"underruns {player.underruns} played {player.played_seconds:6.1f} s" + (f" rtf {rtf:4.2f}x" if rtf else ""),
        flush=True,
    )
