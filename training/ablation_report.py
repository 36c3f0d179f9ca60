"""`harmonic ablate report`: the tables and loss plots of an ablation, into docs/results.md.

Reads OUT/summary.json (written by `harmonic ablate run`) and the runs' metrics.csv, and
writes the marked section `ablations` of the results document (see
`training.doc_sections`) with three comparisons, each next to the paper's claim:

    embedding        the base and the variants that change only `embedding`
    pooling groups   the base and the variants that change only `pool_groups`
    pooling          the base and the variants that change `pooling` (any shape)

The base is the variant without overrides of its own. Loss curves (train and
validation) of the first two go to one PNG each, and of the third to a third PNG.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

from training.doc_sections import markdown_table, write_section
from training.metrics import losses, plot_runs, read_metrics

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results.md"
RESULTS_HEADER = "# Results: sample quality and ablations (issue 7)\n"
SECTION = "ablations"
REAL_CLIPS = "held-out real clips (test voices)"

CLAIMS = {
    "embedding": "The paper: a fixed sinusoidal embedding of the token converges faster and ends lower "
    "than a learned embedding table (docs/spec.md §2).",
    "groups": "The paper: pooling convolutions with 4 feature groups gave the best NLL; dense pooling "
    "(1 group) was unstable; depthwise pooling was also compared (docs/spec.md §5).",
    "pooling": "The paper: pooling is what makes samples coherent: on SC09, FID 0.46 with pooling against "
    "2.95 without.",
}


@dataclasses.dataclass(frozen=True)
class Ablation:
    """A loaded summary: its folder (run paths are relative to it) and its contents."""

    folder: Path
    summary: dict

    @classmethod
    def load(cls, path: str | Path) -> Ablation:
        path = Path(path)
        if path.is_dir():
            path = path / "summary.json"
        if not path.exists():
            raise FileNotFoundError(f"no ablation summary at {path} (written by harmonic ablate run)")
        return cls(path.parent, json.loads(path.read_text()))

    @property
    def variants(self) -> list[dict]:
        return [v for v in self.summary["variants"] if "model" in v]

    @property
    def base(self) -> dict:
        plain = [v for v in self.variants if not v["overrides"]]
        if not plain:
            raise ValueError("the ablation has no base variant (one without overrides of its own)")
        return plain[0]

    def changing(self, fields: set[str]) -> list[dict]:
        """The variants whose model differs from the base's in exactly `fields` ('pooling' may
        bring widths and blocks with it), the base first."""
        base = self.base["model"]
        rows = [self.base]
        for variant in self.variants:
            changed = {key for key, value in variant["model"].items() if base.get(key) != value}
            if changed and (changed == fields or ("pooling" in fields and "pooling" in changed)):
                rows.append(variant)
        return rows

    def run_dir(self, variant: dict) -> Path:
        return self.folder / variant["run"]


def bits(value) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3f}"


def last_train_bits(ablation: Ablation, variant: dict) -> float | None:
    path = ablation.run_dir(variant) / "metrics.csv"
    points = losses(read_metrics(path), "train", ablation.summary["evaluated_step"]) if path.exists() else []
    return points[-1][1] if points else None


def steps_cell(ablation: Ablation, variant: dict) -> str:
    step, reached = ablation.summary["evaluated_step"], variant.get("steps_reached", 0)
    return f"{step:,}" if reached <= step else f"{step:,} (reached {reached:,})"


def groups_cell(model: dict) -> str:
    groups = model["pool_groups"]
    if groups == 1:
        return "1 (dense)"
    if all(width == groups for width in model["widths"]):
        return f"{groups} (depthwise)"
    return str(groups)


def shape_cell(model: dict) -> str:
    pooling = " x ".join(map(str, model["pooling"])) or "none"
    return (
        f"widths {','.join(map(str, model['widths']))}; pooling {pooling}; blocks {','.join(map(str, model['blocks']))}"
    )


def embedding_table(ablation: Ablation) -> tuple[str, str]:
    rows = ablation.changing({"embedding"})
    table = markdown_table(
        ["variant", "embedding", "parameters", "steps", "train NLL (last logged)", "valid NLL", "test NLL"],
        [
            [
                v["name"],
                v["model"]["embedding"],
                f"{v['parameters']:,}",
                steps_cell(ablation, v),
                bits(last_train_bits(ablation, v)),
                bits(v.get("valid_nll_bits")),
                f"**{bits(v.get('test_nll_bits'))}**",
            ]
            for v in rows
        ],
    )
    by_kind: dict[str, Any] = {v["model"]["embedding"]: v.get("test_nll_bits") for v in rows}
    here = ""
    if by_kind.get("sinusoidal") is not None and by_kind.get("learned") is not None:
        difference = by_kind["sinusoidal"] - by_kind["learned"]
        verdict = "agrees with the paper" if difference < 0 else "does not agree with the paper"
        here = f"Here: sinusoidal minus learned test NLL = {difference:+.3f} bits per sample ({verdict})."
    return table, here


def groups_table(ablation: Ablation) -> tuple[str, str]:
    rows = sorted(ablation.changing({"pool_groups"}), key=lambda v: v["model"]["pool_groups"])
    table = markdown_table(
        [
            "variant",
            "pool groups",
            "parameters",
            "steps",
            "test NLL",
            "skipped updates",
            "grad norm median / max",
            "largest loss rise (bits)",
        ],
        [
            [
                v["name"],
                groups_cell(v["model"]),
                f"{v['parameters']:,}",
                steps_cell(ablation, v),
                f"**{bits(v.get('test_nll_bits'))}**",
                v["stability"]["skipped_updates"],
                f"{bits(v['stability']['grad_norm_median'])} / {bits(v['stability']['grad_norm_max'])}",
                bits(v["stability"]["max_loss_rise_bits"]),
            ]
            for v in rows
        ],
    )
    scored = [v for v in rows if v.get("test_nll_bits") is not None]
    here = ""
    if len(scored) > 1:
        best = min(scored, key=lambda v: v["test_nll_bits"])
        unstable = [
            groups_cell(v["model"])
            for v in rows
            if v["stability"]["skipped_updates"] or v["stability"]["nonfinite_losses"]
        ]
        here = f"Here: the lowest test NLL is with pool groups {groups_cell(best['model'])}; " + (
            f"skipped updates or non-finite losses with {', '.join(unstable)} groups."
            if unstable
            else "no variant skipped an update or logged a non-finite loss."
        )
    return table, here


def pooling_table(ablation: Ablation) -> tuple[str, str]:
    rows = ablation.changing({"pooling"})
    metrics = ["FID", "IS", "mIS", "AM"]
    header = [
        "variant",
        "shape",
        "parameters",
        "steps",
        "train min",
        "tokens/s",
        "test NLL",
        "FID (lower)",
        "IS (higher)",
        "mIS (higher)",
        "AM (lower)",
    ]
    body, ceiling = [], None
    for v in rows:
        sampled = (v.get("samples") or {}).get("rows", {})
        generated = sampled.get("generated", {})
        ceiling = ceiling or sampled.get(REAL_CLIPS)
        rate, wall = v.get("tokens_per_s_median"), v.get("train_wall_s")
        body.append(
            [
                v["name"],
                shape_cell(v["model"]),
                f"{v['parameters']:,}",
                steps_cell(ablation, v),
                "-" if wall is None else f"{wall / 60:.1f}",
                "-" if rate is None else f"{rate:,.0f}",
                f"**{bits(v.get('test_nll_bits'))}**",
            ]
            + [bits(generated.get(m)) for m in metrics]
        )
    if ceiling:
        body.append([REAL_CLIPS, "-", "-", "-", "-", "-", "-"] + [bits(ceiling.get(m)) for m in metrics])
    fid: dict[bool, Any] = {
        bool(v["model"]["pooling"]): ((v.get("samples") or {}).get("rows", {}).get("generated") or {}).get("FID")
        for v in rows
    }
    here = ""
    if fid.get(True) is not None and fid.get(False) is not None:
        verdict = "agrees with the paper" if fid[True] < fid[False] else "does not agree with the paper"
        here = f"Here: FID {fid[True]:.2f} with pooling against {fid[False]:.2f} without ({verdict})."
    sampled = [v for v in rows if v.get("samples")]
    if sampled:
        first = sampled[0]["samples"]
        here += (
            f" Sample metrics of {first['n']} generated one-second clips per model (`harmonic eval-samples`, "
            f"digit classifier of `assets/classifiers/digits`; FID against training clips)."
        )
    return markdown_table(header, body), here.strip()


def plot(ablation: Ablation, rows: list[dict], out: Path, title: str) -> Path:
    labels: dict[str, str | Path] = {v["name"]: ablation.run_dir(v) for v in rows}
    return plot_runs(labels, out, title, ablation.summary["evaluated_step"])


def setup_lines(ablation: Ablation) -> str:
    s, base = ablation.summary, ablation.base
    devices = sorted({str(v["device"]) for v in ablation.variants if v.get("device")})
    return "\n".join(
        [
            f"Data `{s['data']}`; every variant trained with the same flags "
            f"`harmonic train {' '.join(s['train_args'])}` (one seed each) and evaluated from its EMA weights at "
            f"step {s['evaluated_step']:,}, the newest step that every variant saved; test NLL on "
            f"{base.get('test_clips', '?')} test clips (voices unseen in training).",
            f"Base model `{base['name']}`: {shape_cell(base['model'])}; pool groups {base['model']['pool_groups']}; "
            f"{base['model']['embedding']} embedding; {base['parameters']:,} parameters. "
            f"{s['parallel']} processes at once on {', '.join(devices) or 'this machine'} (train min and tokens/s "
            f"are with the device shared); training phase {s['train_phase_s'] / 60:.1f} min, in all "
            f"{s.get('total_s', 0) / 60:.1f} min.",
        ]
    )


def write_report(summary: str | Path, doc: Path = RESULTS, plots: Path | None = None, command: str = "") -> list[Path]:
    """Writes the `ablations` section of `doc` and the plots (next to `doc` unless
    `plots` names a folder); returns the plot paths."""
    ablation = Ablation.load(summary)
    plots = Path(plots) if plots else doc.parent
    plots.mkdir(parents=True, exist_ok=True)
    sections = [
        (
            "Embedding: sinusoidal vs learned",
            "embedding",
            embedding_table(ablation),
            ablation.changing({"embedding"}),
            "ablation-embedding.png",
        ),
        (
            "Pooling groups: 1, 4 and depthwise",
            "groups",
            groups_table(ablation),
            sorted(ablation.changing({"pool_groups"}), key=lambda v: v["model"]["pool_groups"]),
            "ablation-pool-groups.png",
        ),
        (
            "With vs without pooling",
            "pooling",
            pooling_table(ablation),
            ablation.changing({"pooling"}),
            "ablation-pooling.png",
        ),
    ]
    parts, written = [setup_lines(ablation)], []
    for title, claim, (table, here), rows, png in sections:
        image = plot(ablation, rows, plots / png, title)
        written.append(image)
        link = os.path.relpath(image, doc.parent)
        parts.append("\n\n".join(filter(None, [f"### {title}", CLAIMS[claim], table, here, f"![{title}]({link})"])))
    if command:
        parts.insert(0, f"Tables and plots: `{command}`.")
    write_section(
        doc,
        SECTION,
        "Ablations at equal steps (digits)",
        ablation.summary["command"],
        "\n\n".join(parts),
        RESULTS_HEADER,
    )
    return written
