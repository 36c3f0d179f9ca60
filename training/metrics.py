"""Training metrics: a CSV file, TensorBoard event files, and `harmonic plot`'s PNG."""

from __future__ import annotations

import csv
import math
from pathlib import Path

FIELDS = ("step", "split", "loss_bits", "grad_norm", "lr", "tokens_per_s", "skipped", "wall_s")


class MetricsWriter:
    """Appends rows to RUN/metrics.csv and scalars to RUN/tensorboard/ (process 0 only).

    On resume, rows after the resumed step (written after the last checkpoint of a run
    that was killed) are dropped, so the CSV holds one continuous curve.
    """

    def __init__(self, run_dir: str | Path, resume_step: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.csv"
        self.tb = None
        if not enabled:
            return
        rows = read_metrics(self.path) if self.path.exists() else []
        rows = [r for r in rows if int(r["step"]) <= resume_step]
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, FIELDS)
            writer.writeheader()
            writer.writerows({k: r.get(k, "") for k in FIELDS} for r in rows)
        self.file = open(self.path, "a", newline="")
        self.csv = csv.DictWriter(self.file, FIELDS)
        try:
            from tensorboardX import SummaryWriter

            self.tb = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=resume_step + 1 if resume_step else None)
        except Exception:  # tensorboardX missing or unwritable: the CSV still has everything
            self.tb = None

    def write(self, step: int, split: str, **values) -> None:
        if not self.enabled:
            return
        row = {"step": step, "split": split, **{k: values.get(k, "") for k in FIELDS[2:]}}
        self.csv.writerow(row)
        self.file.flush()
        if self.tb is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.tb.add_scalar(f"{split}/{key}", value, step)

    def close(self) -> None:
        if not self.enabled:
            return
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def read_metrics(path: str | Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draws train and validation loss (bits per sample) against step to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    path = run_dir / "metrics.csv"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} has no metrics.csv (is it a training run folder?)")
    rows = read_metrics(path)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for split, style in (("train", "-"), ("valid", "o-")):
        points = [(int(r["step"]), float(r["loss_bits"])) for r in rows if r["split"] == split and r["loss_bits"]]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, style, label=split, markersize=4, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("NLL (bits per sample)")
    ax.set_title(run_dir.name)
    ax.grid(alpha=0.3)
    ax.legend()
    out = Path(out) if out else run_dir / "loss.png"
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
