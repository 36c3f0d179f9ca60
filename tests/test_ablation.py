"""`harmonic ablate run` trains two variants at equal steps on a small real digits set
and evaluates them (test NLL, sample metrics); `harmonic ablate report` turns the summary
into the results section with its tables and plots. The variants are one-level models,
the fastest to compile; the report's grouping of pooled variants is checked on a
summary extended with more variants that reuse the same runs."""

from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess

import pytest

from engine.cli import SELF_COMMAND
from training.ablation_report import write_report
from training.ablation_run import AblationPlan, Variant
from training.data.digits import build_digits
from training.metrics import stability

TRAIN = [
    "--preset",
    "tiny",
    "--steps",
    "4",
    "--batch-size",
    "4",
    "--seq-len",
    "512",
    "--warmup-steps",
    "1",
    "--schedule",
    "constant",
    "--save-every",
    "2",
    "--eval-every",
    "2",
    "--eval-clips",
    "4",
    "--log-every",
    "1",
]
ONE_LEVEL = ["--base", "scan=sequential", "--base", "pooling=", "--base", "widths=16", "--base", "blocks=1"]


def harmonic(args, env):
    proc = subprocess.run([*SELF_COMMAND, *map(str, args)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("jax-cache")
    return dict(os.environ, JAX_PLATFORMS="cpu", HARMONIC_COMPILE_CACHE=str(cache))


@pytest.fixture(scope="module")
def ablation(tmp_path_factory, env):
    """An ablation folder: variants `base` (sinusoidal) and `learned`, eval-samples on base."""
    root = tmp_path_factory.mktemp("ablation")
    build_digits(root / "digits", limit=40, progress=False)
    out = root / "out"
    harmonic(
        [
            "ablate",
            "run",
            "--data",
            root / "digits",
            "--out",
            out,
            *ONE_LEVEL,
            "--variant",
            "base",
            "--variant",
            "learned",
            "embedding=learned",
            "--samples",
            "base",
            "--samples-n",
            "2",
            "--samples-batch",
            "2",
            "--samples-reference",
            "20",
            "--",
            *TRAIN,
        ],
        env,
    )
    return out


def test_run_trains_and_evaluates_every_variant_at_equal_steps(ablation):
    summary = json.loads((ablation / "summary.json").read_text())
    assert summary["evaluated_step"] == 4 and summary["train_args"] == TRAIN
    assert summary["command"].startswith("harmonic ablate run --data ")
    variants = {v["name"]: v for v in summary["variants"]}
    assert set(variants) == {"base", "learned"}
    assert variants["base"]["model"]["embedding"] == "sinusoidal"
    assert variants["learned"]["model"]["embedding"] == "learned"
    # The learned table adds 256 x width parameters; everything else is the same model.
    assert variants["learned"]["parameters"] - variants["base"]["parameters"] == 256 * 16
    for v in variants.values():
        assert v["train_returncode"] == 0 and v["steps_reached"] == 4 and v["target_steps"] == 4
        assert math.isfinite(v["test_nll_bits"]) and 0 < v["test_nll_bits"] < 10 and v["test_clips"] == 10
        assert v["stability"]["skipped_updates"] == 0 and v["stability"]["grad_norm_max"] > 0
        assert (ablation / v["model_dir"] / "params").is_dir()
        assert (ablation / v["run"] / "metrics.csv").exists()
    samples = variants["base"]["samples"]["rows"]
    assert math.isfinite(samples["generated"]["FID"]) and "samples" not in variants["learned"]


def test_report_writes_tables_and_plots_into_the_doc(ablation, tmp_path, env):
    doc = tmp_path / "docs" / "results.md"
    doc.parent.mkdir()
    doc.write_text("# Results\n\nWritten by hand; the report keeps it.\n")
    for _ in range(2):  # a second report replaces the section instead of adding one
        harmonic(["ablate", "report", ablation / "summary.json", "--doc", doc], env)
    text = doc.read_text()
    assert text.startswith("# Results\n\nWritten by hand") and text.count("<!-- begin: ablations -->") == 1
    assert "Command: `harmonic ablate run --data " in text and "`harmonic ablate report " in text
    rows = {
        m.group(1): float(m.group(2))
        for m in re.finditer(
            r"^\| (base|learned) \| (?:sinusoidal|learned) \|"
            r"[^\n]*\*\*([0-9.]+)\*\* \|$",
            text,
            re.M,
        )
    }
    assert set(rows) == {"base", "learned"} and all(math.isfinite(v) for v in rows.values())
    assert re.search(r"Here: sinusoidal minus learned test NLL = [+-][0-9.]+ bits per sample", text)
    for png in ("ablation-embedding.png", "ablation-pool-groups.png", "ablation-pooling.png"):
        assert (doc.parent / png).stat().st_size > 5000
        assert f"]({png})" in text


def test_report_groups_variants_by_what_they_change(ablation, tmp_path):
    """Pool-group and pooling variants (here reusing the base's run) land in their tables."""
    summary = json.loads((ablation / "summary.json").read_text())
    base = next(v for v in summary["variants"] if v["name"] == "base")
    extra = {
        "groups1": {"pool_groups": 1},
        "depthwise": {"pool_groups": 16},
        "pooled": {"pooling": [4], "widths": [16, 16], "blocks": [1, 1]},
    }
    for name, changes in extra.items():
        variant = copy.deepcopy(base)
        variant.update(name=name, overrides=[f"{k}={v}" for k, v in changes.items()])
        variant["model"].update(changes)
        variant["samples"]["rows"]["generated"]["FID"] += 1.0
        summary["variants"].append(variant)
    extended = ablation / "extended.json"
    extended.write_text(json.dumps(summary))
    doc = tmp_path / "results.md"
    write_report(extended, doc)
    sections = dict(re.findall(r"### ([^\n]+)\n(.*?)(?=\n### |\Z)", doc.read_text(), re.S))
    groups = sections["Pooling groups: 1, 4 and depthwise"]
    assert re.findall(r"^\| (\w+) \| ([^|]+) \|", groups, re.M)[1:] == [
        ("groups1", "1 (dense)"),
        ("base", "4"),
        ("depthwise", "16 (depthwise)"),
    ]
    pooling = sections["With vs without pooling"]
    assert [m for m in re.findall(r"^\| ([^|]+?) \|", pooling, re.M) if m != "variant"] == [
        "base",
        "pooled",
        "held-out real clips (test voices)",
    ]
    assert "does not agree with the paper" in pooling  # the pooled copy was given the worse FID
    embedding = sections["Embedding: sinusoidal vs learned"]
    assert "groups1" not in embedding and "pooled" not in embedding and "| learned |" in embedding


def test_plan_refuses_what_would_break_equal_steps(tmp_path):
    variants = (Variant.parse(["base"]), Variant.parse(["nopool", "pooling=", "widths=96", "blocks=3"]))
    assert variants[1].overrides == ("pooling=", "widths=96", "blocks=3")
    plan = AblationPlan(data=tmp_path, out=tmp_path / "out", variants=variants)
    plan.validate()
    assert "--keep-checkpoints" in plan.train_command(variants[0])
    assert plan.train_command(variants[1])[-6:] == ["--set", "pooling=", "--set", "widths=96", "--set", "blocks=3"]
    for bad, message in [
        ({"train_args": ("--set", "dropout=0.1")}, "--set"),
        ({"train_args": ("--resume",)}, "never resumes"),
        ({"variants": variants + (variants[0],)}, "repeat"),
        ({"samples": ("nope",)}, "no variant"),
    ]:
        with pytest.raises(ValueError, match=message):
            AblationPlan(**{**plan.__dict__, **bad}).validate()
    with pytest.raises(ValueError, match="letters"):
        Variant.parse(["two words"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        Variant.parse(["learned", "embedding"])


def test_stability_counts_skips_norms_and_spikes():
    rows = [
        {"step": str(s), "split": "train", "loss_bits": str(loss), "grad_norm": str(norm), "skipped": str(skip)}
        for s, loss, norm, skip in [
            (10, 6.0, 2.0, 0),
            (20, 4.0, 3.0, 0),
            (30, 5.5, 900.0, 1),
            (40, 3.0, 1.0, 1),
            (50, "nan", "nan", 3),
        ]
    ]
    rows.insert(2, {"step": "20", "split": "valid", "loss_bits": "4.5", "grad_norm": "", "skipped": ""})
    assert stability(rows) == {
        "skipped_updates": 3,
        "grad_norm_median": 2.5,
        "grad_norm_max": 900.0,
        "nonfinite_losses": 1,
        "max_loss_rise_bits": 1.5,
    }
    assert stability(rows, until_step=20)["max_loss_rise_bits"] == 0.0
