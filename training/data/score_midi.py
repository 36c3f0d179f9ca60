"""music21's bundled corpus as piano MIDI files: the scores behind the piano set.

Every work of the corpus (sonatas, quartets, chorales, masses, madrigals, folk songs,
fiddle tunes) is parsed once, every part set to a General MIDI acoustic grand, and
written as one MIDI file per work (an opus such as a folk song collection gives one file
per tune). Parsing is the slow part (seconds per score), so the files are cached in a
folder that outlives data builds: the MIDI folder is small enough to send to a GPU
machine, where `training.data.piano` renders it in several piano timbres.

Folder layout: `<hash>.mid` per work, `.files/<hash>.json` per corpus file parsed (an
interrupted export continues where it stopped), and `index.json` (written last):
{"works": [{"id", "file", "seconds"}], "failed": [{"id", "error"}]}.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
from pathlib import Path

from tqdm import tqdm

from training.files import replacing, write_text

INDEX = "index.json"
PARSE_TIMEOUT_S = 240


# Keyboard music first, so a partial export already holds the most piano-like works.
FIRST = (
    "beethoven",
    "mozart",
    "haydn",
    "schubert",
    "schumann_robert",
    "schumann_clara",
    "chopin",
    "joplin",
    "handel",
    "scarlatti",
    "clementi",
    "corelli",
    "cpebach",
    "bach",
)


def corpus_files() -> list[Path]:
    """Every score file of music21's bundled corpus: keyboard composers first, then the
    rest from the smallest file up."""
    # music21 (0.2 s) loads only where scores are read or written: training.data.piano
    # imports this module for the index alone.
    from music21 import corpus  # noqa: PLC0415

    def order(path: Path):
        group = work_id(path).split("/")[0]
        return (FIRST.index(group) if group in FIRST else len(FIRST), path.stat().st_size, str(path))

    return sorted((Path(p) for p in corpus.getPaths()), key=order)


def work_id(path: Path, number: int | None = None) -> str:
    """`composer/file[#n]`, the path inside the corpus plus the tune's number in an opus."""
    parts = path.parts
    rel = "/".join(parts[parts.index("corpus") + 1 :]) if "corpus" in parts else path.name
    return rel if number is None else f"{rel}#{number}"


def midi_name(work: str) -> str:
    return hashlib.sha1(work.encode()).hexdigest()[:16] + ".mid"


def _pianoize(score) -> None:
    """Every part played by an acoustic grand (GM program 1)."""
    from music21 import instrument  # noqa: PLC0415 - as in corpus_files

    parts = list(score.parts) if len(score.parts) else [score]
    for part in parts:
        for old in list(part.recurse().getElementsByClass(instrument.Instrument)):
            old.activeSite.remove(old)
        part.insert(0, instrument.Piano())


def _write_midi(score, path: Path) -> float:
    """Writes `score` as MIDI atomically; returns its length in seconds."""
    from music21 import bar, repeat  # noqa: PLC0415 - as in corpus_files

    _pianoize(score)
    with replacing(path) as (temporary,):
        try:
            score.write("midi", fp=str(temporary))
        except repeat.ExpanderException:
            # Badly formed repeats: play it straight through.
            for mark in list(score.recurse().getElementsByClass((bar.Repeat, repeat.RepeatExpression))):
                mark.activeSite.remove(mark)
            score.write("midi", fp=str(temporary))
    seconds = max((float(s["endTimeSeconds"]) for s in score.secondsMap), default=0.0)
    return seconds or float(score.highestTime) * 0.5  # no tempo mark: MIDI's 120 bpm


def _timeout(signum, frame):
    raise TimeoutError(f"parsing took more than {PARSE_TIMEOUT_S} s")


def export_file(job: tuple[str, str]) -> tuple[list[dict], list[dict]]:
    """Parses one corpus file into MIDI files in `out`; returns (works, failures)."""
    path, out = Path(job[0]), Path(job[1])
    record = out / ".files" / midi_name(work_id(path)).replace(".mid", ".json")
    if record.is_file():  # exported by an earlier, interrupted run
        done = json.loads(record.read_text())
        return done["works"], done["failed"]
    from music21 import converter, stream  # noqa: PLC0415 - as in corpus_files; none for a file done before

    works, failed = [], []
    signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(PARSE_TIMEOUT_S)
    try:
        parsed = converter.parse(str(path))
        scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
        for number, score in enumerate(scores):
            wid = work_id(path, number if isinstance(parsed, stream.Opus) else None)
            try:
                target = out / midi_name(wid)
                seconds = _write_midi(score, target)
                works.append({"id": wid, "file": target.name, "seconds": round(seconds, 2)})
            except Exception as error:  # music21 raises many types on odd scores
                failed.append({"id": wid, "error": f"{type(error).__name__}: {str(error)[:160]}"})
    except Exception as error:
        failed.append({"id": work_id(path), "error": f"{type(error).__name__}: {str(error)[:160]}"})
    finally:
        signal.alarm(0)
    record.parent.mkdir(exist_ok=True)
    write_text(record, json.dumps({"works": works, "failed": failed}))
    return works, failed


def export_corpus(out: str | Path, workers: int = 0, limit: int = 0, progress: bool = True) -> dict:
    """Exports music21's corpus (the first `limit` files if given) as MIDI into `out`;
    returns the index. Files are written as they parse, the index last. With `limit`,
    the index lists only what those files gave."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = corpus_files()[: limit or None]
    jobs = [(str(f), str(out)) for f in files]
    # spawn, not fork: this may run inside a process where JAX's threads are running.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers or os.cpu_count() or 1, maxtasksperchild=20) as pool:
        for _ in tqdm(
            pool.imap_unordered(export_file, jobs), total=len(jobs), desc="scores", unit="file", disable=not progress
        ):
            pass
    return write_index(out)


def write_index(out: str | Path) -> dict:
    """Writes index.json from the per-file records: also usable on an unfinished export."""
    out = Path(out)
    works, failed = [], []
    for record in sorted((out / ".files").glob("*.json")):
        done = json.loads(record.read_text())
        works += done["works"]
        failed += done["failed"]
    works.sort(key=lambda w: w["id"])
    index = {
        "works": works,
        "failed": sorted(failed, key=lambda f: f["id"]),
        "hours": round(sum(w["seconds"] for w in works) / 3600, 2),
    }
    write_text(out / INDEX, json.dumps(index, indent=1))
    return index


def read_index(folder: str | Path) -> dict:
    path = Path(folder) / INDEX
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no exported scores (no {INDEX}): run `harmonic data midi` first")
    return json.loads(path.read_text())
