"""`harmonic data|train|eval|plot|export`: the training stack's commands.

Every field of DataConfig, TrainConfig and ParallelConfig is a flag (`--batch-size`,
`--lr`, `--seq-shards`, ...); `--set KEY=VALUE` overrides any ModelConfig field of the
preset (e.g. `--set widths=32,64,128 --set dropout=0.1`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import tempfile
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

from platformdirs import user_cache_dir

from engine.errors import UserError, is_disk_full
from training.config import DataConfig, ParallelConfig, RunConfig, TrainConfig
from training.files import disk_full_message, quiet_full_disk_logs

TRAIN_HELP = {
    "preset": "model preset (engine presets: tiny, realtime, paper)",
    "steps": "total optimiser steps of the run",
    "lr": "peak learning rate (AdamW)",
    "warmup_steps": "linear warm-up steps",
    "schedule": "after warm-up: constant or cosine",
    "grad_clip": "clip the global grad norm at this value",
    "skip_grad_norm": "skip (and count) an update whose grad norm exceeds this",
    "ema": "EMA decay of the weights used for evaluation and generation",
    "dropout": "dropout rate (< 0: the preset's)",
    "input_noise": "share of input samples moved a few mu-law classes, targets kept clean (training/input_noise.py)",
    "input_noise_reach": "mu-law classes a moved input sample goes, at most",
    "eval_every": "validate every N steps (0: only at the end, -1: never)",
    "save_every": "checkpoint every N steps (and always at the end)",
    "max_minutes": "wall-time budget: stop and save after this many minutes (0: none)",
    "init_from": "a new run starts from this model's weights (same preset; a fresh optimiser and warm-up)",
    "path": "a built data set, or any folder of audio files (built into a cache first)",
    "seq_len": "training crop length in samples (0: the clip length)",
    "batch_size": "clips per step, over all devices",
    "eval_clips": "validation clips per periodic validation (0: all)",
    "seq_shards": "devices the time axis is split over (context parallelism)",
    "data_shards": "devices the batch is split over (0: all the others)",
    "remat": "recompute block activations in the backward pass (long sequences)",
    "matmul": "the step's matrix products: default (XLA's; TF32 on NVIDIA GPUs) or bf16 (float32 accumulation)",
    "coordinator": "multi-host: host:port of process 0 (or JAX_COORDINATOR_ADDRESS)",
    "num_processes": "multi-host: number of processes (or JAX_NUM_PROCESSES)",
    "process_id": "multi-host: this process's index (or JAX_PROCESS_ID)",
}


@contextlib.contextmanager
def full_disk_is_user_error(folder: str | Path, advice: Callable[[], str]) -> Iterator[None]:
    """A full disk under `folder`, whichever library hit it and however it wrapped the
    OSError, becomes one line saying so and what to do (`advice()`, asked when it
    happened); every other error passes through. orbax's loggers would add a traceback
    per write task that failed: their records of a full disk are dropped."""
    quiet_full_disk_logs("absl", "asyncio")
    try:
        yield
    except Exception as error:
        if not is_disk_full(error):
            raise
        raise UserError(disk_full_message(Path(folder), advice())) from None


def register(commands: argparse._SubParsersAction) -> None:
    _register_data(commands)
    _register_train(commands)
    _register_eval(commands)
    _register_plot(commands)
    _register_export(commands)
    _register_run_state(commands)


# ------------------------------------------------------------------------------- data


def _register_data(commands):
    parser = commands.add_parser("data", help="build and inspect training data sets")
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    build = sub.add_parser("build", help="build a data set: digits, piano, or a folder of audio files")
    build.add_argument("kind", choices=["digits", "piano", "piano-holdout", "folder"])
    build.add_argument("--out", required=True, help="output folder (created)")
    build.add_argument("--src", help="folder of audio files (kind folder)")
    build.add_argument(
        "--limit",
        type=int,
        default=0,
        help="small build: at most N clips (digits), works (piano; piano-holdout writes N, 60 by "
        "default) or files (folder)",
    )
    build.add_argument("--clip-seconds", type=float, default=8.0, help="clip length (folder)")
    build.add_argument(
        "--scale", default="minmax", choices=["minmax", "peak", "none"], help="per-clip scaling (docs/spec.md §1)"
    )
    build.add_argument("--takes", type=int, default=1, help="digits: random pitch/rate/level takes per voice and word")
    build.add_argument(
        "--synthesizers",
        default="",
        help="digits: comma-separated speech synthesizers whose voices to use (espeak, flite; default: all)",
    )
    build.add_argument("--max-hours", type=float, default=0.0, help="piano: stop at this much score time (0: all)")
    build.add_argument(
        "--gap-seconds", type=float, default=0.5, help="piano: digital silence between one work and the next"
    )
    build.add_argument(
        "--breaks-seconds",
        type=float,
        default=0.0,
        help="piano: add pauses of about the gap's length before notes after a quiet moment, "
        "about one every so many seconds of music (0: none)",
    )
    build.add_argument(
        "--midi", help="piano: the exported scores (`harmonic data midi`; default: exported into the user cache first)"
    )
    build.add_argument(
        "--soundfonts",
        help="piano: folder of the piano soundfonts (default: cut from the system's soundfonts into the user cache)",
    )
    build.add_argument(
        "--room-share",
        type=float,
        default=0.5,
        help="piano: the share of works played in a synthetic room (0: all dry)",
    )
    build.add_argument(
        "--render-cache",
        metavar="DIR",
        help="piano: keep each work's render here, so that a rebuild (another gap, more hours) renders only new works",
    )
    build.add_argument("--workers", type=int, default=0, help="parallel workers (0: one per CPU)")
    build.add_argument("--force", action="store_true", help="rebuild over an existing data set")
    build.set_defaults(run=run_data_build)
    midi = sub.add_parser("midi", help="export music21's corpus as piano MIDI files (the piano set's scores)")
    midi.add_argument("--out", required=True, help="output folder (an interrupted export continues)")
    midi.add_argument("--limit", type=int, default=0, help="at most N corpus files (0: all)")
    midi.add_argument("--workers", type=int, default=0, help="parallel workers (0: one per CPU)")
    midi.set_defaults(run=run_data_midi)
    fonts = sub.add_parser("soundfonts", help="cut the piano soundfonts out of the system's General MIDI soundfonts")
    fonts.add_argument("--out", required=True, help="output folder")
    fonts.set_defaults(run=run_data_soundfonts)
    info = sub.add_parser("info", help="print a data set's manifest")
    info.add_argument("dir")
    info.set_defaults(run=run_data_info)


def _summary(manifest: dict) -> str:
    lines = [
        f"{manifest['kind']} data set: {manifest['clips']:,} clips, {manifest['hours']:.3f} hours, "
        f"{manifest['clip_seconds']:g} s clips at {manifest['sample_rate']} Hz"
    ]
    for split, info in manifest["splits"].items():
        lines.append(f"  {split:5}: {info['clips']:6,} clips  {info['hours']:8.3f} h  from {info['sources']} sources")
    return "\n".join(lines)


def run_data_build(args) -> int:
    from training.data.manifest import is_dataset

    out = Path(args.out)
    if is_dataset(out) and not args.force:
        raise UserError(f"{out} already holds a data set (pass --force to rebuild)")
    with full_disk_is_user_error(out, lambda: "no data set was kept; free space or choose another --out"):
        manifest = _build(args, out)
    print(_summary(manifest))
    for skipped in manifest.get("skipped", []):
        print(f"  skipped {skipped['file']}: {skipped['error']}")
    for failed in manifest.get("failed", [])[:20]:
        print(f"  failed: {json.dumps(failed)}")
    print(f"wrote {out}/manifest.json")
    return 0


def _build(args, out: Path) -> dict:
    try:
        if args.kind == "digits":
            from training.data.digits import SYNTHESIZERS, build_digits

            synthesizers = tuple(args.synthesizers.split(",")) if args.synthesizers else SYNTHESIZERS
            if unknown := set(synthesizers) - set(SYNTHESIZERS):
                raise UserError(
                    f"unknown synthesizer {', '.join(sorted(unknown))}; choose from {', '.join(SYNTHESIZERS)}"
                )
            manifest = build_digits(
                out,
                limit=args.limit,
                takes=args.takes,
                scale_mode=args.scale,
                workers=args.workers,
                synthesizers=synthesizers,
            )
        elif args.kind == "piano":
            from training.data.piano import build_piano, make_soundfonts
            from training.data.score_midi import export_corpus

            cache = _user_cache() / "piano"
            midi = args.midi or cache / "midi"
            if not args.midi:
                export_corpus(midi, workers=args.workers)
            soundfonts = args.soundfonts or make_soundfonts(cache / "soundfonts")
            manifest = build_piano(
                out,
                midi,
                soundfonts,
                limit=args.limit,
                max_hours=args.max_hours,
                workers=args.workers,
                gap_seconds=args.gap_seconds,
                render_cache=args.render_cache,
                room_share=args.room_share,
                breaks_seconds=args.breaks_seconds,
            )
        elif args.kind == "piano-holdout":
            from training.data.holdout import write_holdout_midi
            from training.data.piano import HOLDOUT_PIANO, build_piano, make_soundfonts

            soundfonts = args.soundfonts or make_soundfonts(_user_cache() / "piano" / "soundfonts")
            with tempfile.TemporaryDirectory() as midi:
                write_holdout_midi(midi, works=args.limit or 60)
                manifest = build_piano(
                    out, midi, soundfonts, workers=args.workers, pianos=(HOLDOUT_PIANO,), split="test"
                )
        else:
            if not args.src:
                raise UserError("data build folder needs --src FOLDER")
            from training.data.audio_folder import build_folder

            manifest = build_folder(
                args.src, out, args.clip_seconds, args.scale, limit=args.limit, workers=args.workers
            )
    except (FileNotFoundError, RuntimeError, ValueError) as error:
        if is_disk_full(error):  # said by full_disk_is_user_error, with what to do
            raise
        raise UserError(str(error)) from None
    return manifest


def _user_cache() -> Path:
    return Path(user_cache_dir("harmonic"))


def run_data_midi(args) -> int:
    from training.data.score_midi import export_corpus

    index = export_corpus(args.out, workers=args.workers, limit=args.limit)
    print(
        f"{len(index['works']):,} works, {index['hours']:.1f} hours of score time, {len(index['failed'])} failed "
        f"(listed in {Path(args.out) / 'index.json'})"
    )
    return 0


def run_data_soundfonts(args) -> int:
    from training.data.piano import make_soundfonts

    try:
        out = make_soundfonts(args.out)
    except (FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from None
    print(f"piano soundfonts in {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    return 0


def run_data_info(args) -> int:
    from training.data.manifest import DataError, read_manifest

    try:
        manifest = read_manifest(args.dir)
    except DataError as error:
        raise UserError(str(error)) from None
    print(_summary(manifest))
    print(
        json.dumps({k: v for k, v in manifest.items() if k not in ("splits", "test_voices", "valid_voices")}, indent=2)[
            :3000
        ]
    )
    return 0


# ------------------------------------------------------------------------------ train


def _flag_type(field: dataclasses.Field, owner):
    hint = typing.get_type_hints(owner)[field.name]
    if typing.get_origin(hint) is typing.Literal:
        return str, typing.get_args(hint)
    return type(field.default), None


def _add_dataclass_flags(parser, cls, rename=None):
    group = parser.add_argument_group(cls.__name__)
    for field in dataclasses.fields(cls):
        name = (rename or {}).get(field.name, field.name)
        flag = "--" + name.replace("_", "-")
        kind, choices = _flag_type(field, cls)
        help_text = TRAIN_HELP.get(field.name, "") + f" (default {field.default})"
        if kind is bool:
            group.add_argument(
                flag,
                dest=f"{cls.__name__}.{field.name}",
                action="store_true",
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            group.add_argument(
                flag,
                dest=f"{cls.__name__}.{field.name}",
                type=kind,
                choices=choices,
                default=argparse.SUPPRESS,
                help=help_text,
            )


def _register_train(commands):
    parser = commands.add_parser(
        "train",
        help="train a model (resumable, multi-device, multi-host)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--run", dest="run_dir", help="run folder (default runs/<data>-<preset>)")
    parser.add_argument("--resume", action="store_true", help="continue the run from its newest good checkpoint")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a model config field of the preset (repeatable)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_dataclass_flags(parser, DataConfig, rename={"path": "data"})
    _add_dataclass_flags(parser, TrainConfig)
    _add_dataclass_flags(parser, ParallelConfig)
    parser.set_defaults(run=run_train)


def _given(args, cls) -> dict:
    prefix = cls.__name__ + "."
    return {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix)}


def _with_overrides(config, pairs: list[str]):
    """`--set KEY=VALUE` applied (`ModelConfig.with_overrides`); a bad pair is one line."""
    try:
        return config.with_overrides(pairs)
    except ValueError as error:
        raise UserError(str(error)) from None


def build_run_config(args):
    """The RunConfig from flags; with --resume, the run's saved config with any flags given now."""
    from engine import model

    data_flags, train_flags, par_flags = (
        _given(args, DataConfig),
        _given(args, TrainConfig),
        _given(args, ParallelConfig),
    )
    saved = Path(args.run_dir) / "config.json" if args.run_dir else None
    if args.resume and saved and saved.is_file():
        base = RunConfig.from_dict(json.loads(saved.read_text()))
        config = _with_overrides(base.model, args.set)
        return RunConfig(
            model=config,
            data=dataclasses.replace(base.data, **data_flags),
            train=dataclasses.replace(base.train, **train_flags),
            parallel=dataclasses.replace(base.parallel, **par_flags),
        )
    if "path" not in data_flags:
        raise UserError("train needs --data DIR (a built data set or a folder of audio files)")
    train = TrainConfig(**train_flags)
    try:
        train.validate()
        config = model.preset(train.preset)
    except ValueError as error:
        raise UserError(str(error)) from None
    if train.dropout >= 0:
        config = config.replace(dropout=train.dropout)
    config = _with_overrides(config, args.set)
    return RunConfig(model=config, data=DataConfig(**data_flags), train=train, parallel=ParallelConfig(**par_flags))


def run_train(args) -> int:
    from engine.compile_cache import enable_compile_cache
    from training import distributed

    run = build_run_config(args)
    enable_compile_cache()
    try:
        distributed.initialize(run.parallel)
    except Exception as error:
        raise UserError(f"jax.distributed.initialize failed: {error}") from None
    from engine.checkpoint import CheckpointError
    from training.data.manifest import DataError
    from training.loop import device_description, train

    if not args.run_dir:
        args.run_dir = str(Path("runs") / f"{Path(run.data.path).name}-{run.train.preset}")
    import jax

    if jax.process_index() == 0:
        print(
            f"run {args.run_dir}: preset {run.train.preset}, {device_description()}, "
            f"mesh data x seq = {run.parallel.data_shards or 'all'} x {run.parallel.seq_shards}",
            flush=True,
        )
    try:
        with full_disk_is_user_error(args.run_dir, lambda: _resume_advice(Path(args.run_dir))):
            summary = train(args.run_dir, run, resume=args.resume, progress=not args.no_progress)
    except (DataError, CheckpointError, FileExistsError, ValueError) as error:
        raise UserError(str(error)) from None
    if jax.process_index() == 0:
        valid = summary["valid_nll_bits"]
        valid = "-" if valid is None else f"{valid:.4f}"
        print(
            f"done: step {summary['steps']} ({summary['stopped']}), valid NLL "
            f"{valid} bits/sample, {summary.get('tokens_per_s', 0):,.0f} tokens/s, "
            f"{summary['skipped']} skipped updates; checkpoints in {args.run_dir}/checkpoints"
        )
    return 0


def _resume_advice(run_dir: Path) -> str:
    from engine.checkpoint import step_directories

    folder = run_dir / "checkpoints"
    steps = step_directories(folder) if folder.is_dir() else []
    kept = f"its last checkpoint, step {steps[0].name}, is intact" if steps else "it has no checkpoint yet"
    return f"{kept}; free space, then continue with: harmonic train --run {run_dir} --resume"


# ------------------------------------------------------------------- eval, plot, export


def _register_eval(commands):
    parser = commands.add_parser("eval", help="NLL in bits per sample of a checkpoint on a data set split")
    parser.add_argument("--checkpoint", required=True, help="model dir, run step dir, or a run's checkpoints folder")
    parser.add_argument("--data", required=True, help="a built data set")
    parser.add_argument("--split", default="test", choices=["train", "valid", "test"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-clips", type=int, default=0, help="evaluate at most N clips (0: all)")
    parser.set_defaults(run=run_eval)


def run_eval(args) -> int:
    from engine.checkpoint import CheckpointError
    from training.data.manifest import DataError
    from training.evaluate import evaluate_checkpoint

    try:
        bits, clips, loaded = evaluate_checkpoint(
            args.checkpoint, args.data, args.split, args.batch_size, args.max_clips
        )
    except (CheckpointError, DataError, ValueError) as error:
        raise UserError(str(error)) from None
    print(f"{args.split} NLL: {bits:.4f} bits per sample ({clips} clips of {args.data}, model {loaded.path})")
    return 0


def _register_plot(commands):
    parser = commands.add_parser("plot", help="draw a run's loss curves to a PNG")
    parser.add_argument("run_dir", metavar="RUN")
    parser.add_argument("--out", help="PNG path (default RUN/loss.png)")
    parser.set_defaults(run=run_plot)


def run_plot(args) -> int:
    from training.metrics import plot_run

    try:
        with full_disk_is_user_error(Path(args.out or args.run_dir), lambda: "no plot was written; free space"):
            out = plot_run(args.run_dir, args.out)
    except FileNotFoundError as error:
        raise UserError(str(error)) from None
    print(f"wrote {out}")
    return 0


def _register_export(commands):
    parser = commands.add_parser("export", help="write a run's EMA weights as a standalone model with a card")
    parser.add_argument("run_dir", metavar="RUN")
    parser.add_argument("--out", required=True, help="new model folder")
    parser.add_argument("--name", default="", help="model name for the card")
    parser.add_argument("--no-test", action="store_true", help="skip measuring test NLL for the card")
    parser.add_argument("--max-clips", type=int, default=0, help="test clips to measure (0: all)")
    parser.add_argument(
        "--bfloat16", action="store_true", help="store the weights in half the bytes (a run's start to carry)"
    )
    parser.set_defaults(run=run_export)


def run_export(args) -> int:
    from engine.checkpoint import CheckpointError
    from training.evaluate import export_run

    try:
        with full_disk_is_user_error(Path(args.out), lambda: f"nothing was written to {args.out}; free space"):
            out, card = export_run(
                args.run_dir, args.out, args.name, not args.no_test, args.max_clips, bfloat16=args.bfloat16
            )
    except (CheckpointError, ValueError) as error:
        raise UserError(str(error)) from None
    print(json.dumps(card, indent=2))
    print(f"wrote {out}")
    return 0


# -------------------------------------------------------------------------- run state


def _register_run_state(commands):
    parser = commands.add_parser("run-state", help="carry a run between machines as a few small files")
    sub = parser.add_subparsers(dest="state_command", required=True, metavar="ACTION")
    pack = sub.add_parser("pack", help="the newest checkpoint of RUN, its configs and metrics, into OUT")
    pack.add_argument("run_dir", metavar="RUN")
    pack.add_argument("--out", required=True, help="folder to write (replaced)")
    pack.add_argument("--part-mb", type=int, default=15, help="largest file, MiB")
    pack.set_defaults(run=run_state_pack)
    unpack = sub.add_parser("unpack", help="make RUN a run that --resume continues from a packed state")
    unpack.add_argument("packed", metavar="PACKED")
    unpack.add_argument("--run", dest="run_dir", required=True, help="run folder to create")
    unpack.set_defaults(run=run_state_unpack)


def run_state_pack(args) -> int:
    from engine.checkpoint import CheckpointError
    from training.run_state import pack

    try:
        meta = pack(args.run_dir, args.out, args.part_mb)
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from None
    size = sum(p.stat().st_size for p in Path(args.out).iterdir()) / 2**20
    print(f"packed step {meta['step']} of {args.run_dir} into {args.out} ({size:.1f} MiB)")
    return 0


def run_state_unpack(args) -> int:
    from training.run_state import unpack

    checkpoints = Path(args.run_dir, "checkpoints")
    if checkpoints.is_dir() and any(checkpoints.iterdir()):
        raise UserError(f"{args.run_dir} already has checkpoints: unpack into a new run folder")
    try:
        step = unpack(args.packed, args.run_dir)
    except (FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from None
    print(f"{args.run_dir} resumes from step {step} (harmonic train --run {args.run_dir} --resume)")
    return 0
