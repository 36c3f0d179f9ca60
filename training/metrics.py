"""Training metrics: a CSV file, TensorBoard event files, and `harmonic plot`'s PNG."""

from __future__ import annotations

import csv
import math
import statistics
import time
from pathlib import Path

from training.files import replacing

FIELDS = ("step", "split", "loss_bits", "grad_norm", "lr", "tokens_per_s", "skipped", "wall_s")


class MetricsWriter:
    """Appends rows to RUN/metrics.csv and scalars to RUN/tensorboard/ (process 0 only).

    On resume, rows after the resumed step (written after the last checkpoint of a run
    that was killed) are dropped, so the CSV holds one continuous curve. That rewrite
    replaces the file whole (`training.files.replacing`); after it rows are only
    appended, one flushed line each, so a kill or a full disk can cut at most the last
    line, which the next start drops with the rows it no longer needs.
    """

    def __init__(self, run_dir: str | Path, resume_step: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.csv"
        self.tb = None
        if not enabled:
            return
        rows = read_metrics(self.path) if self.path.exists() else []
        rows = [r for r in rows if int(r["step"]) <= resume_step]
        with replacing(self.path) as (temporary,), open(temporary, "w", newline="") as f:
            writer = csv.DictWriter(f, FIELDS)
            writer.writeheader()
            writer.writerows({k: r.get(k, "") for k in FIELDS} for r in rows)
        self.file = open(self.path, "a", newline="")
        self.csv = csv.DictWriter(self.file, FIELDS)
        try:
            # tensorboardX's plain events writer: written and flushed here, row by row like
            # the CSV. Its SummaryWriter writes from a thread and flushes again at exit,
            # which on a full disk prints tracebacks after the run has already stopped.
            # Imported here: without tensorboardX the run goes on with the CSV alone.
            from tensorboardX.event_file_writer import EventsWriter  # noqa: PLC0415
            from tensorboardX.proto.event_pb2 import Event, SessionLog  # noqa: PLC0415

            (Path(run_dir) / "tensorboard").mkdir(exist_ok=True)
            self.tb = EventsWriter(str(Path(run_dir) / "tensorboard" / "events"))
            if resume_step:  # TensorBoard hides the earlier files' events after this step
                self.tb.write_event(Event(step=resume_step + 1, session_log=SessionLog(status=SessionLog.START)))
        except (ImportError, OSError):  # tensorboardX missing or unwritable: the CSV still has everything
            self.tb = None

    def write(self, step: int, split: str, **values) -> None:
        if not self.enabled:
            return
        row = {"step": step, "split": split, **{k: values.get(k, "") for k in FIELDS[2:]}}
        self.csv.writerow(row)
        self.file.flush()
        if self.tb is not None:
            # tensorboardX is there (self.tb exists), imported in __init__ where it may be missing
            from tensorboardX.proto.event_pb2 import Event  # noqa: PLC0415
            from tensorboardX.summary import scalar  # noqa: PLC0415

            for key, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    summary = scalar(f"{split}/{key}", value)
                    self.tb.write_event(Event(wall_time=time.time(), step=step, summary=summary))
            self.tb.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def read_metrics(path: str | Path) -> list[dict]:
    """The complete rows of a metrics CSV (a last line cut short by a kill is left out)."""
    with open(path, newline="") as f:
        lines = [line for line in f if line.endswith("\n")]
    return list(csv.DictReader(lines))


def losses(rows: list[dict], split: str, until_step: int = 0) -> list[tuple[int, float]]:
    """(step, loss in bits) of one split's rows, up to `until_step` (0: all)."""
    return [
        (int(r["step"]), float(r["loss_bits"]))
        for r in rows
        if r["split"] == split and r["loss_bits"] and (not until_step or int(r["step"]) <= until_step)
    ]


def stability(rows: list[dict], until_step: int = 0) -> dict:
    """How smoothly a run trained, from its metrics rows up to `until_step` (0: all).

    Returns skipped updates (loss not finite or grad norm over the skip threshold), the
    median and largest logged grad norm (each train row logs its window's last step),
    non-finite logged losses, and the largest rise of the logged train loss above its
    lowest value so far (a loss spike, in bits per sample; 0 for a curve that only falls).
    """
    train = [r for r in rows if r["split"] == "train" and (not until_step or int(r["step"]) <= until_step)]
    norms = [float(r["grad_norm"]) for r in train if r["grad_norm"] and math.isfinite(float(r["grad_norm"]))]
    values = [loss for _, loss in losses(train, "train")]
    rise, lowest = 0.0, math.inf
    for loss in filter(math.isfinite, values):
        if lowest < math.inf:
            rise = max(rise, loss - lowest)
        lowest = min(lowest, loss)
    return {
        "skipped_updates": int(train[-1]["skipped"] or 0) if train else 0,
        "grad_norm_median": statistics.median(norms) if norms else None,
        "grad_norm_max": max(norms) if norms else None,
        "nonfinite_losses": sum(not math.isfinite(loss) for loss in values),
        "max_loss_rise_bits": rise,
    }


def plot_runs(runs: dict[str, str | Path], out: str | Path, title: str, until_step: int = 0) -> Path:
    """Draws the train (line) and validation (dots) loss of several runs on one plot.

    Args:
      runs: legend label -> run folder holding metrics.csv.
      out: PNG path.
      title: the plot's title.
      until_step: draw steps up to this one (0: all); marked with a dotted line when
        some run went further.
    """
    # Here: matplotlib (0.25 s) only draws plots, and pyplot must come after the backend is chosen.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    last_step = 0
    for index, (label, run_dir) in enumerate(runs.items()):
        path = Path(run_dir) / "metrics.csv"
        if not path.exists():
            raise FileNotFoundError(f"{run_dir} has no metrics.csv (is it a training run folder?)")
        rows = read_metrics(path)
        color = f"C{index}"
        last_step = max([last_step] + [s for s, _ in losses(rows, "train")])
        for split, style in (("train", "-"), ("valid", "o--")):
            points = losses(rows, split, until_step)
            if points:
                xs, ys = zip(*points, strict=True)
                name = split if len(runs) == 1 else f"{label} {split}"
                ax.plot(xs, ys, style, color=color, label=name, markersize=4, linewidth=1.2)
    if until_step and last_step > until_step:
        ax.axvline(until_step, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("NLL (bits per sample)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    out = Path(out)
    fig.tight_layout()
    with replacing(out) as (temporary,):
        fig.savefig(temporary)
    plt.close(fig)
    return out


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draws one run's train and validation loss (bits per sample) against step to a PNG."""
    run_dir = Path(run_dir)
    return plot_runs({run_dir.name: run_dir}, Path(out) if out else run_dir / "loss.png", run_dir.name)
