"""`harmonic fx CHAIN.json IN OUT`: an audio file through an effects chain, offline; and
the --fx option that `generate` and `play` share.

The file is read at the stream's rate, 16 kHz mono (engine.audio_file.read_audio), so a
chain sounds as it does on the live stream and on a take; the output is 16 kHz too.
engine.effects is imported when a command runs: it loads pedalboard, and every `harmonic`
command registers this one.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from engine.errors import UserError
from engine.mulaw import SAMPLE_RATE
from engine.take_file import TakeFile


def add_fx_arguments(parser: argparse.ArgumentParser) -> None:
    """--fx and --fx-tail (shared by `generate` and `play`)."""
    group = parser.add_argument_group("effects")
    group.add_argument("--fx", metavar="CHAIN", help="process through this effects chain (.json; see docs/effects.md)")
    group.add_argument(
        "--fx-tail", type=float, default=2.0, metavar="S", help="seconds the chain rings out after the take (default 2)"
    )


def open_fx(args: argparse.Namespace):
    """The `EffectsChain` of --fx; UserError (one line) for a bad file, a missing plugin,
    a bad parameter or a bad --fx-tail."""
    from engine.effects import ChainSpec, EffectsChain

    if not 0 <= args.fx_tail < math.inf:
        raise UserError(f"--fx-tail must be a number >= 0, got {args.fx_tail}")
    return EffectsChain(ChainSpec.load(args.fx))


def print_notices(chain, write: Callable[[str], None] = print) -> None:
    """Prints what the chain has to say (a plugin muted for sending NaN), if there is a chain."""
    for notice in chain.drain_notices() if chain is not None else ():
        write(f"effects: {notice}")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("fx", help="process an audio file through an effects chain")
    parser.add_argument("chain", metavar="CHAIN", help="the chain (.json)")
    parser.add_argument("input", metavar="IN", help="audio file (any format libsndfile reads)")
    parser.add_argument("output", metavar="OUT", help="output file, .wav or .flac (16 kHz mono)")
    parser.add_argument(
        "--tail", type=float, default=2.0, metavar="S", help="seconds of ring-out after the input (default 2)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Reads IN whole (16 kHz mono is small), writes OUT block by block, atomically."""
    from engine.audio import Stage
    from engine.audio_file import read_audio
    from engine.effects import ChainSpec, EffectsChain

    if not 0 <= args.tail < math.inf:
        raise UserError(f"--tail must be a number >= 0, got {args.tail}")
    spec = ChainSpec.load(args.chain)
    with TakeFile(args.output) as take, EffectsChain(spec) as chain:  # both checked before the file is read
        audio = read_audio(args.input)
        blocks = (audio[i : i + chain.max_block] for i in range(0, len(audio), chain.max_block))
        for piece in Stage(chain).aligned(blocks, args.tail):
            take.write(piece[None, :])
            print_notices(chain)
        take.finish()
    print(
        f"wrote {args.output}: {take.seconds:.2f} s ({len(audio) / SAMPLE_RATE:.2f} s of {args.input} "
        f"and {args.tail:g} s of tail) through {len(spec.slots)} effect(s)"
    )
    return 0
