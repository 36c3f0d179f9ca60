"""What an effects chain costs the live stream: the default model generating, with each
chain processing the very same chunks, timed side by side in one run.

    python -m benchmarks.effects               # about 1 minute on a 2-core VM
    python -m benchmarks.effects --quick       # a smoke run; does not write the doc
"""

from __future__ import annotations

import argparse
import os
import time

from benchmarks.report import command_line, load_average, machine_line, write_section
from engine.audio import mix_down
from engine.checkpoint import load_model
from engine.compile_cache import enable_compile_cache
from engine.effects import ChainSpec, EffectsChain, PluginFormat, PluginRef, PluginSlot
from engine.effects.vst3 import vst3_folders
from engine.generator import GenerationSettings, Generator
from engine.mulaw import SAMPLE_RATE
from training.doc_sections import markdown_table

REVERB = PluginSlot(PluginRef(PluginFormat.BUILTIN, "Reverb", "Reverb"), {"room_size": 0.8})
COMPRESSOR = PluginSlot(
    PluginRef(PluginFormat.BUILTIN, "Compressor", "Compressor"), {"threshold_db": -18.0, "ratio": 4.0}
)


def chains() -> dict[str, ChainSpec]:
    """The chains measured, by the name the table gives them."""
    found = {
        "reverb + compressor (built-in, 16 kHz)": ChainSpec([REVERB, COMPRESSOR]),
        "reverb + compressor (built-in, 48 kHz mode)": ChainSpec([REVERB, COMPRESSOR], rate=48000),
    }
    dragonfly = next(
        (
            folder / "DragonflyHallReverb.vst3"
            for folder in vst3_folders()
            if (folder / "DragonflyHallReverb.vst3").exists()
        ),
        None,
    )
    if dragonfly is not None:
        hall = PluginSlot(PluginRef(PluginFormat.VST3, str(dragonfly), "Dragonfly Hall Reverb"))
        found["Dragonfly Hall (VST3) + compressor, 16 kHz"] = ChainSpec([hall, COMPRESSOR])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s of audio; do not write docs/benchmarks.md")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of audio to generate (default 30)")
    args = parser.parse_args()
    seconds = 2.0 if args.quick else args.seconds
    enable_compile_cache()
    checkpoint = load_model(None)
    generator = Generator(checkpoint, GenerationSettings(random_seed=1))
    specs = chains()
    running = {name: EffectsChain(spec, max_block=generator.chunk_samples) for name, spec in specs.items()}
    generator.next_chunk()  # compiles (or loads) the program: not timed
    generating, processing, samples, chunks = 0.0, dict.fromkeys(specs, 0.0), 0, 0
    load_before = load_average()
    while samples < seconds * SAMPLE_RATE:
        began = time.perf_counter()
        chunk = generator.next_chunk()
        generating += time.perf_counter() - began
        mono = mix_down(chunk)
        for name, chain in running.items():  # every chain on the same chunk, right after it
            began = time.perf_counter()
            chain.process(mono)
            processing[name] += time.perf_counter() - began
        samples += chunk.shape[1]
        chunks += 1
    load_after = load_average()
    audio = samples / SAMPLE_RATE
    header = [
        "chain",
        "effects ms per 50 ms chunk",
        "share of real time",
        "model + effects x real time",
        "vs no effects",
    ]
    rows = [["none", "0", "0%", f"{audio / generating:.2f}x", "1.00"]]
    for name, spent in processing.items():
        rows.append(
            [
                name,
                f"{1000 * spent / chunks:.2f}",
                f"{spent / audio:.1%}",
                f"{audio / (generating + spent):.2f}x",
                f"{generating / (generating + spent):.2f}",
            ]
        )
    table = markdown_table(header, rows)
    print(table)
    if args.quick:
        return
    body = "\n\n".join(
        [
            machine_line(f"a {os.cpu_count()}-core CPU VM")
            + f" Load average before/after: {load_before} / {load_after}"
            + " (other engineers' jobs shared the cores: read the ratios, not the absolute speeds).",
            f"The default model (`{checkpoint.name}`), 1 voice, {audio:.0f} s of audio in 50 ms chunks; each chain "
            "processes every chunk right after it is generated (`engine.effects.EffectsChain`, as `harmonic play --fx` "
            "does), so all rows time the same audio. *vs no effects*: the real-time factor kept.",
            table,
        ]
    )
    write_section("effects", "Effects chains on the live stream", command_line(), body)
    print("wrote docs/benchmarks.md section effects")


if __name__ == "__main__":
    main()
