"""`harmonic ablate run|report`: train model variants at equal steps, then tabulate them.

    harmonic ablate run --data data/digits --out runs/ablations --parallel 5 --mem-fraction 0.3 \
        --base widths=48,48,48,48 ... --variant base --variant learned embedding=learned \
        --samples base --samples-n 256 -- --preset realtime --steps 2000 --batch-size 32 ...
    harmonic ablate report runs/ablations        # -> the `ablations` section of docs/results.md

Everything after `--` goes to every variant's `harmonic train` unchanged. See
`training.ablation_run` (what run does) and `training.ablation_report` (the tables).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from engine.errors import UserError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("ablate", help="train model variants at equal steps and compare them (issue 7)")
    sub = parser.add_subparsers(dest="ablate_command", required=True, metavar="ACTION")

    run = sub.add_parser(
        "run",
        help="train the variants (concurrently if asked), evaluate each, write OUT/summary.json",
        description="Everything after `--` is passed to every variant's `harmonic train`.",
    )
    run.add_argument("--data", required=True, help="a built data set (the same for every variant)")
    run.add_argument("--out", required=True, help="ablation folder: OUT/NAME run folders, OUT/models, OUT/summary.json")
    run.add_argument(
        "--variant",
        action="append",
        nargs="+",
        required=True,
        metavar=("NAME", "KEY=VALUE"),
        help="a variant: its name, then its model overrides (as harmonic train --set); repeatable. "
        "The one without overrides is the base the report compares against",
    )
    run.add_argument(
        "--base",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model override shared by every variant (repeatable)",
    )
    run.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="processes at once: variants training, then evaluation jobs (one GPU is shared)",
    )
    run.add_argument(
        "--mem-fraction",
        type=float,
        default=0.0,
        help="cap each process at this fraction of the accelerator's memory, without "
        "preallocating it (XLA_PYTHON_CLIENT_MEM_FRACTION; 0: JAX's default)",
    )
    run.add_argument(
        "--samples",
        action="append",
        default=[],
        metavar="NAME",
        help="also run harmonic eval-samples on this variant (repeatable)",
    )
    run.add_argument("--samples-n", type=int, default=256, help="eval-samples: clips to generate")
    run.add_argument("--samples-batch", type=int, default=256, help="eval-samples: clips generated at once")
    run.add_argument(
        "--samples-reference", type=int, default=2000, help="eval-samples: training clips as the reference"
    )
    run.add_argument("--test-clips", type=int, default=0, help="test clips for the NLL (0: the whole test split)")
    run.add_argument("--eval-minutes", type=float, default=0.0, help="time limit of each evaluation process (0: none)")
    run.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then harmonic train flags for every variant")
    run.set_defaults(run=run_ablate)

    report = sub.add_parser("report", help="write an ablation's tables and loss plots into docs/results.md")
    report.add_argument("summary", help="OUT/summary.json of harmonic ablate run, or its folder")
    report.add_argument("--doc", help="markdown file to write the `ablations` section into (default docs/results.md)")
    report.add_argument("--plots", help="folder for the PNGs (default: the doc's folder)")
    report.set_defaults(run=run_report)


def run_ablate(args: argparse.Namespace) -> int:
    import jax

    # This process only starts and reads the runs: the accelerator is left to them.
    jax.config.update("jax_platforms", "cpu")
    from training.ablation_run import AblationPlan, Variant, run_ablation

    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    samples_args = [
        "--n",
        str(args.samples_n),
        "--batch",
        str(args.samples_batch),
        "--max-reference",
        str(args.samples_reference),
    ]
    try:
        plan = AblationPlan(
            data=Path(args.data),
            out=Path(args.out),
            variants=tuple(Variant.parse(v) for v in args.variant),
            base=tuple(args.base),
            train_args=tuple(train_args),
            parallel=args.parallel,
            mem_fraction=args.mem_fraction,
            samples=tuple(args.samples),
            samples_args=tuple(samples_args),
            test_clips=args.test_clips,
            eval_minutes=args.eval_minutes,
            command=shlex.join(["harmonic", *sys.argv[1:]]),
        )
        summary = run_ablation(plan)
    except ValueError as error:
        raise UserError(str(error)) from None
    failed = [v["name"] for v in summary["variants"] if v.get("test_nll_bits") is None]
    for v in summary["variants"]:
        print(
            f"{v['name']:>12}: {v.get('parameters', 0):>9,} parameters, test NLL {v.get('test_nll_bits')} "
            f"bits/sample at step {summary['evaluated_step']}"
        )
    print(f"wrote {Path(args.out) / 'summary.json'}")
    if failed:
        raise UserError(f"no test NLL for {', '.join(failed)}: see their train.log / export.log in {args.out}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from training.ablation_report import RESULTS, write_report

    doc = Path(args.doc) if args.doc else RESULTS
    try:
        plots = write_report(args.summary, doc, args.plots, command=shlex.join(["harmonic", *sys.argv[1:]]))
    except (FileNotFoundError, ValueError, KeyError) as error:
        raise UserError(f"{args.summary}: {error}") from None
    print(f"wrote the ablations section of {doc} and {', '.join(map(str, plots))}")
    return 0
