"""`harmonic info`: a preset's config, parameters per level and full-rate-equivalent size."""

from __future__ import annotations

import argparse

from engine.config import PRESETS, ModelConfig, preset
from engine.errors import UserError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("info", help="show a model preset's shape and size")
    parser.add_argument("--preset", default="realtime", choices=sorted(PRESETS), help="model preset")
    parser.set_defaults(run=run)


def describe(config: ModelConfig) -> str:
    """A human-readable table of `config`'s levels and parameter counts."""
    from engine import model  # jax and flax: only `harmonic info` waits for them, not every `harmonic` call

    shapes = model.param_shapes(config)
    counts = model.level_param_counts(shapes, config)
    lines = ["config:"]
    lines += [f"  {key} = {value}" for key, value in config.to_dict().items()]
    lines.append("")
    lines.append(f"{'level':>5} {'rate (Hz)':>10} {'width':>6} {'pairs':>6} {'params':>12} {'per sample':>12}")
    for level, count in enumerate(counts):
        divisor = config.level_rate_divisor(level)
        lines.append(
            f"{level:>5} {16000 / divisor:>10.1f} {config.widths[level]:>6} "
            f"{config.blocks[level]:>6} {count:>12,} {count / divisor:>12,.0f}"
        )
    lines.append("")
    lines.append(f"total parameters:               {model.count_params(shapes):,}")
    lines.append("  (level 0 includes the embedding and the output head)")
    lines.append(f"total pooling:                  {config.total_pooling}x")
    fre = model.full_rate_equivalent(shapes, config)
    lines.append(f"full-rate-equivalent parameters: {fre:,.0f} ({fre * 4 / 1e6:.2f} MB of float32 read per sample)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        config = preset(args.preset)
    except ValueError as error:
        raise UserError(str(error)) from None
    print(describe(config))
    return 0
