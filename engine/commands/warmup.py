"""`harmonic warmup`: compile the default generation programs into the persistent compile
caches, so that the first `harmonic play` (or the app) starts in seconds.

`scripts/setup` runs it (skip with HARMONIC_SKIP_WARMUP=1). The generator's default
backend is the numba kernel (`engine.fast_step`), cached in the user cache folder's
`numba`; the JAX programs (seed audio's prefill, the fallback backend) go to JAX's cache. The
caches are keyed by the programs, not the weights: warming with the `realtime` preset also
serves any checkpoint of that shape, such as the shipped default (the kernel serves any
shape).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from engine.errors import UserError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("warmup", help="precompile the default generation programs (fast first start)")
    parser.add_argument(
        "--checkpoint", metavar="C", help="model to warm up for (default: the shipped model, else the realtime preset)"
    )
    parser.add_argument("--voices", type=int, default=1, help="voices to compile for (default 1)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from engine.checkpoint import CheckpointError, load_model
    from engine.compile_cache import enable_compile_cache
    from engine.generator import Backend, GenerationSettings, Generator

    cache = enable_compile_cache()
    try:
        checkpoint = load_model(args.checkpoint)
    except CheckpointError as error:
        if args.checkpoint:
            raise UserError(str(error)) from None
        checkpoint = shaped_checkpoint("realtime")
    generator = Generator(checkpoint, GenerationSettings(voices=args.voices))
    if cache is None and generator.backend is Backend.JAX:
        print("warmup: the compile cache is disabled (HARMONIC_COMPILE_CACHE); nothing to do")
        return 0
    seconds = generator.warmup()
    where = f"numba: {os.environ['NUMBA_CACHE_DIR']}" if generator.backend is not Backend.JAX else f"jax: {cache}"
    print(f"warmup: compiled the {generator.backend.value} programs of {checkpoint.name} in {seconds:.1f} s ({where})")
    return 0


def shaped_checkpoint(preset: str):
    """A `ModelCheckpoint` of zeros shaped like `preset`: compiling needs only shapes, and
    skipping the random initialisation saves its own compilation."""
    from engine import model
    from engine.checkpoint import ModelCheckpoint

    config = model.preset(preset)
    params = jax_tree_zeros(model.param_shapes(config))
    return ModelCheckpoint(config, params, {"name": f"{preset} (shapes only)"}, Path(preset))


def jax_tree_zeros(shapes):
    import jax

    return jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), shapes)
