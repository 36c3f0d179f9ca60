"""`harmonic devices`: the audio devices PortAudio sees."""

from __future__ import annotations

import argparse

from engine.errors import UserError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("devices", help="list audio input and output devices")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from engine.audio import AudioUnavailable, list_devices

    try:
        devices = list_devices()
    except AudioUnavailable as error:
        raise UserError(str(error)) from None
    if not devices:
        print("no audio devices found (no sound card or sound server); `harmonic generate --out FILE` still works")
        return 0
    print(f"{'':2}{'index':>5}  {'in':>3} {'out':>3}  {'rate':>6}  {'host API':<12} name")
    for d in devices:
        mark = ("<" if d.is_default_input else " ") + (">" if d.is_default_output else " ")
        print(
            f"{mark}{d.index:>5}  {d.max_input_channels:>3} {d.max_output_channels:>3}  "
            f"{d.default_samplerate:>6.0f}  {d.hostapi:<12} {d.name}"
        )
    print("(< default input, > default output; choose with --device / --input-device INDEX or a part of the name)")
    return 0
