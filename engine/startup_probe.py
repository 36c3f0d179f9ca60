"""A new process's way to its first audio, the path `harmonic play` and the app take
before the sound card starts: imports, the compile cache, loading the model, compiling
(or loading from the cache) and generating the first chunk. `engine.measure.probe_startup`
runs it in a child process and times it from outside:

    python -m engine.startup_probe TARGET     # a preset name (random weights) or a checkpoint folder
"""

from __future__ import annotations

import sys

from engine import model
from engine.checkpoint import load_model
from engine.compile_cache import enable_compile_cache
from engine.generator import GenerationSettings, Generator
from engine.measure import random_checkpoint


def first_chunk(target: str) -> None:
    """Loads `target` and generates one chunk, with the persistent compile cache on."""
    enable_compile_cache()
    checkpoint = random_checkpoint(target) if target in model.PRESETS else load_model(target)
    Generator(checkpoint, GenerationSettings(random_seed=1)).next_chunk()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m engine.startup_probe TARGET")
    first_chunk(sys.argv[1])
