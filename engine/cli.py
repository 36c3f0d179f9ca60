"""The `harmonic` command line.

Subcommands come from the entry-point group `harmonic.commands`: each entry is a function
that adds its subparsers. The engine registers its own here; `training` registers its
commands the same way, so the engine never imports training code.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

from engine.errors import UserError, is_interrupt, log_unexpected, one_line

COMMAND_GROUP = "harmonic.commands"
# `harmonic` run by this interpreter, for child processes: the `harmonic` on PATH may
# belong to another environment (CI does not activate .venv). Not `-m engine.cli`: that
# would load this module twice.
SELF_COMMAND = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harmonic", description="HarmonicRNN: generate raw audio with linear RNNs, and train them."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        entry.load()(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    context = f"harmonic {args.command}"
    try:
        return args.run(args) or 0
    except UserError as error:
        print(f"{context}: {one_line(error)}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Exception) as error:
        if not is_interrupt(error):  # the policy: a traceback goes to the log, one line to the user
            print(log_unexpected(error, context), file=sys.stderr)
            return 1
        print(f"{context}: stopped", file=sys.stderr)
        return 130


def register(commands: argparse._SubParsersAction) -> None:
    """Adds the engine's subcommands."""
    from engine.commands import bench, devices, fx, generate, info, play, plugins, warmup

    for module in (info, generate, play, devices, bench, warmup, fx, plugins):
        module.register(commands)
