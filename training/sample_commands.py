"""`harmonic classifier` and `harmonic eval-samples`: perceptual metrics of generated digits.

`classifier` trains the digit classifier on a built digits set and reports its accuracy
on the test voices (unseen in training); `classifier-accuracy` measures a trained one on
the splits of any digits set (another synthesizer's voices, say). `eval-samples` generates N one-second clips
with a checkpoint, in batches of independent voices on whatever device JAX has, and
prints FID, IS, mIS and AM against the training set next to the same metrics of held-out
real clips (the ceiling), as in the SaShiMi / Mamba SC09 protocol.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from engine import mulaw
from engine.errors import UserError
from engine.mulaw import SAMPLE_RATE
from training.data.manifest import SPLITS
from training.files import replacing

CLIP = SAMPLE_RATE  # one-second digits

CLASSIFIER = Path(__file__).resolve().parent.parent / "assets" / "classifiers" / "digits"


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("classifier", help="train the digit classifier that eval-samples uses")
    train.add_argument("--data", required=True, help="a built digits data set (harmonic data build digits)")
    train.add_argument("--out", default=str(CLASSIFIER), help="classifier folder to write (new)")
    train.add_argument("--steps", type=int, default=3000)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--channels", default="32,64,128", help="channels of the network's stages (fewer train faster on a CPU)"
    )
    train.add_argument(
        "--augment",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change one field of the training augmentation (training/digit_augment.py, AugmentConfig), "
        "e.g. speed_range=0; repeatable",
    )
    train.add_argument(
        "--also-test",
        action="append",
        default=[],
        metavar="DATA",
        help="also measure on every clip of this digits set (e.g. a synthesizer left out of --data); repeatable",
    )
    train.set_defaults(run=run_classifier)

    accuracy = commands.add_parser("classifier-accuracy", help="a digit classifier's accuracy on each split of a set")
    accuracy.add_argument("--data", required=True, help="a built digits data set")
    accuracy.add_argument("--classifier", default=str(CLASSIFIER))
    accuracy.set_defaults(run=run_classifier_accuracy)

    evaluate = commands.add_parser("eval-samples", help="FID / IS / mIS / AM of generated one-second digits")
    evaluate.add_argument("--checkpoint", required=True, help="a model trained on digits")
    evaluate.add_argument("--n", type=int, default=256, help="clips to generate")
    evaluate.add_argument("--data", required=True, help="the digits data set (train split = reference)")
    evaluate.add_argument("--classifier", default=str(CLASSIFIER))
    evaluate.add_argument("--batch", type=int, default=64, help="clips generated at once (voices)")
    evaluate.add_argument("--temperature", type=float, default=1.0)
    evaluate.add_argument("--top-p", type=float, default=1.0)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument(
        "--reject",
        type=float,
        default=0.0,
        help="also report metrics after dropping this fraction of least likely clips",
    )
    evaluate.add_argument("--max-reference", type=int, default=2000, help="training clips used as the reference")
    evaluate.add_argument("--json", help="also write the table as JSON here")
    evaluate.set_defaults(run=run_eval_samples)

    measure = commands.add_parser(
        "measure",
        help="what takes sound like: silence, level, noise, DC, pitch salience (docs/model.md), against real clips",
    )
    measure.add_argument("audio", nargs="*", help="audio files (takes); each channel (voice) is measured apart")
    measure.add_argument("--data", help="a built data set whose real clips are measured too")
    measure.add_argument("--split", default="test")
    measure.add_argument("--clips", type=int, default=64, help="real clips to measure (random, fixed seed)")
    measure.add_argument("--start", type=float, default=0.0, help="measure takes from this second on")
    measure.add_argument(
        "--pooled", action="store_true", help="one row per file: its voices measured together, not each apart"
    )
    measure.add_argument("--spectrograms", help="also draw each row's spectrogram into this PNG")
    measure.set_defaults(run=run_measure)


def load_split_audio(data: str, split: str, limit: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Decoded clips float32 [N, 16000] and labels int [N] of one split."""
    from training.data.loader import Split
    from training.data.manifest import DataError

    try:
        clips = Split(data, split)
    except DataError as error:
        raise UserError(str(error)) from None
    rows = np.arange(len(clips))
    if limit and limit < len(rows):
        rows = np.sort(np.random.default_rng(seed).choice(rows, limit, replace=False))
    tokens = np.asarray(clips.tokens[rows, :CLIP])
    return mulaw.decode(tokens), np.asarray(clips.labels[rows]).astype(np.int32)


def split_sizes(data: str) -> dict[str, dict]:
    """{split: {"clips": ..., "sources": ...}} of a built data set."""
    from training.data.manifest import DataError, read_manifest

    try:
        return read_manifest(data)["splits"]
    except DataError as error:
        raise UserError(str(error)) from None


def load_digits(data: str, splits: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The clips float32 [N, 16000] and digit labels int [N] of these splits of a digits set, together."""
    present = [s for s in splits if split_sizes(data)[s]["clips"]]
    if not present:
        raise UserError(f"{data} has no clips in {', '.join(splits)}")
    loaded = [load_split_audio(data, split) for split in present]
    labels = np.concatenate([split_labels for _, split_labels in loaded])
    if labels.min() < 0:
        raise UserError(f"{data} has no digit labels; build it with: harmonic data build digits")
    return np.concatenate([split_audio for split_audio, _ in loaded]), labels


def parse_augment(pairs: list[str]):
    """`AugmentConfig` with these FIELD=VALUE changes; UserError names a bad one."""
    from training.digit_augment import AugmentConfig

    config = AugmentConfig()
    fields = [field.name for field in dataclasses.fields(config)]
    changes = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in fields or not value:
            raise UserError(f"--augment {pair!r}: expected FIELD=VALUE with FIELD one of {', '.join(fields)}")
        kind = type(getattr(config, name))
        try:
            changes[name] = kind(value)
        except ValueError:
            raise UserError(f"--augment {pair!r}: {value!r} is not of type {kind.__name__}") from None
    return dataclasses.replace(config, **changes)


def run_classifier(args: argparse.Namespace) -> int:
    from training import digit_classifier as dc

    if Path(args.out).exists():
        raise UserError(f"{args.out} already exists; choose a new --out")
    augmentation = parse_augment(args.augment)
    try:
        network = dc.ClassifierConfig(channels=tuple(int(c) for c in args.channels.split(",")))
    except ValueError:
        raise UserError(f"--channels {args.channels!r}: expected comma-separated integers, e.g. 32,64,128") from None
    train_audio, train_labels = load_digits(args.data, ("train",))
    test_audio, test_labels = load_digits(args.data, ("test",))
    valid_audio, valid_labels = load_digits(args.data, ("valid",))
    other_sets = {data: load_digits(data, SPLITS) for data in args.also_test}
    classifier = dc.train_classifier(
        train_audio, train_labels, args.steps, args.batch_size, args.lr, args.seed, network, augmentation
    )
    classifier.card.update(
        data=str(args.data),
        valid_accuracy=classifier.accuracy(valid_audio, valid_labels),
        test_accuracy=classifier.accuracy(test_audio, test_labels),
        test_note="test voices are unseen in training (split by voice)",
        other_data_accuracy={
            data: {"clips": len(labels), "accuracy": classifier.accuracy(audio, labels)}
            for data, (audio, labels) in other_sets.items()
        },
    )
    dc.save_classifier(args.out, classifier)
    print(
        f"valid accuracy {classifier.card['valid_accuracy']:.3f}, test accuracy (unseen voices) "
        f"{classifier.card['test_accuracy']:.3f}; wrote {args.out}"
    )
    for data, measured in classifier.card["other_data_accuracy"].items():
        print(f"{data}: accuracy {measured['accuracy']:.3f} on {measured['clips']} clips")
    return 0


def run_classifier_accuracy(args: argparse.Namespace) -> int:
    from engine.checkpoint import CheckpointError
    from training.digit_classifier import load_classifier

    try:
        classifier = load_classifier(args.classifier)
    except CheckpointError as error:
        raise UserError(str(error)) from None
    splits = split_sizes(args.data)
    print(f"{'split':<6} {'clips':>6} {'voices':>6} {'accuracy':>8}")
    for split in SPLITS:
        if splits[split]["clips"]:
            audio, labels = load_digits(args.data, (split,))
            print(
                f"{split:<6} {len(labels):>6} {splits[split]['sources']:>6} {classifier.accuracy(audio, labels):>8.3f}"
            )
    return 0


def generate_clips(checkpoint, n: int, batch: int, temperature: float, top_p: float, random_seed: int) -> np.ndarray:
    """n one-second clips float32 [n, 16000], `batch` voices at a time."""
    from engine.generator import GenerationSettings, Generator

    clips = []
    for start in range(0, n, batch):
        voices = min(batch, n - start)
        settings = GenerationSettings(
            temperature=temperature, top_p=top_p, random_seed=random_seed + start, voices=voices, chunk_ms=250
        )
        clips.append(Generator(checkpoint, settings).render(1.0))
        print(f"generated {start + voices}/{n} clips", flush=True)
    return np.concatenate(clips)[:, :CLIP]


def clip_nll_bits(checkpoint, audio: np.ndarray, batch: int) -> np.ndarray:
    """Each clip's mean NLL in bits per sample under the model: [N]."""
    import jax

    from engine import model
    from training.loss import LN2, token_nll

    @jax.jit
    def nll(tokens):
        logits = model.forward(checkpoint.params, checkpoint.config, tokens)
        return token_nll(logits, tokens).mean(axis=1) / LN2

    tokens = mulaw.encode(audio)
    return np.concatenate([np.asarray(nll(tokens[i : i + batch])) for i in range(0, len(tokens), batch)])


def run_eval_samples(args: argparse.Namespace) -> int:
    from engine.checkpoint import CheckpointError, load_model
    from training import sample_metrics
    from training.digit_classifier import load_classifier

    try:
        checkpoint = load_model(args.checkpoint)
        classifier = load_classifier(args.classifier)
    except CheckpointError as error:
        raise UserError(str(error)) from None
    if args.n < 2:
        raise UserError("--n must be at least 2 (the metrics compare distributions)")
    began = time.time()
    train_audio, _ = load_split_audio(args.data, "train", args.max_reference)
    real_audio, real_labels = load_split_audio(args.data, "test", args.n)
    train_probs, train_features = classifier.outputs(train_audio)
    generated = generate_clips(checkpoint, args.n, args.batch, args.temperature, args.top_p, args.seed)
    rows = {}
    for name, audio in (("generated", generated), ("held-out real clips (test voices)", real_audio)):
        probs, features = classifier.outputs(audio)
        rows[name] = sample_metrics.all_metrics(probs, features, train_probs, train_features)
    if args.reject > 0:
        nll = clip_nll_bits(checkpoint, generated, args.batch)
        keep = np.argsort(nll)[: max(2, int(round(len(nll) * (1 - args.reject))))]
        probs, features = classifier.outputs(generated[keep])
        rows[f"generated, {args.reject:.0%} least likely rejected"] = sample_metrics.all_metrics(
            probs, features, train_probs, train_features
        )
    print(
        f"\n{args.n} clips from {checkpoint.name} (temperature {args.temperature}, top-p {args.top_p}), "
        f"classifier test accuracy {classifier.card.get('test_accuracy', float('nan')):.3f}, "
        f"{time.time() - began:.0f} s\n"
    )
    print(f"| {'clips':<45} | {'FID (lower)':>11} | {'IS (higher)':>11} | {'mIS (higher)':>12} | {'AM (lower)':>10} |")
    print(f"|{'-' * 47}|{'-' * 13}|{'-' * 13}|{'-' * 14}|{'-' * 12}|")
    for name, metrics in rows.items():
        print(
            f"| {name:<45} | {metrics['FID']:>11.3f} | {metrics['IS']:>11.3f} | {metrics['mIS']:>12.3f} "
            f"| {metrics['AM']:>10.3f} |"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"checkpoint": str(checkpoint.path), "n": args.n, "rows": rows}, indent=2)
        )
    return 0


def run_measure(args) -> int:
    from engine.audio_file import read_audio
    from training.audio_measures import HEADER, measure

    start = int(args.start * SAMPLE_RATE)
    rows = []
    for path in args.audio:
        voices = read_audio(path, mono=False)[:, start:]
        if args.pooled:
            rows.append((f"{Path(path).name}, {len(voices)} voice(s) pooled", voices.ravel()))
        else:
            named = [Path(path).name + (f" voice {v + 1}" if len(voices) > 1 else "") for v in range(len(voices))]
            rows += list(zip(named, voices, strict=True))
    if args.data:
        from training.data.loader import Split
        from training.data.manifest import DataError

        try:
            split = Split(args.data, args.split)
        except DataError as error:
            raise UserError(str(error)) from None
        pick = np.random.default_rng(0).permutation(len(split))[: args.clips]
        real = [mulaw.decode(split.tokens[i, : split.lengths[i]].astype(np.int32)) for i in sorted(pick)]
        rows.append((f"real: {len(real)} {args.split} clips", np.concatenate(real)))
    if not rows:
        raise UserError("nothing to measure: name audio files and/or --data")
    table = []
    for name, audio in rows:
        try:
            table.append([name, *measure(audio).row()])
        except ValueError as error:  # shorter than a frame (after --start)
            raise UserError(f"cannot measure {name}: {error}") from None
    widths = [max(len(r[i]) for r in table + [["", *HEADER]]) for i in range(len(HEADER) + 1)]
    for line in [["", *HEADER], *table]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
    if args.spectrograms:
        _spectrograms(rows, args.spectrograms)
        print(f"wrote {args.spectrograms}")
    return 0


def _spectrograms(rows, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 2.2 * len(rows)), squeeze=False)
    for ax, (name, audio) in zip(axes[:, 0], rows, strict=True):
        ax.specgram(audio[: 20 * SAMPLE_RATE], NFFT=512, Fs=SAMPLE_RATE, noverlap=384, cmap="magma", vmin=-120)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("Hz")
    axes[-1, 0].set_xlabel("seconds (first 20)")
    fig.tight_layout()
    with replacing(Path(path)) as (temporary,):
        fig.savefig(temporary, dpi=80)
    plt.close(fig)
