"""The piano set (Beethoven-like): music21's corpus rendered through FluidSynth.

Each score of the chosen composers is parsed with music21, every part is set to a
General MIDI acoustic grand piano, written as MIDI and rendered by FluidSynth with a GM
soundfont at 16 kHz; the audio is cut into 8 s clips (clips that are nearly silent are
dropped, a short last clip is padded). The split is by piece. Rendered pieces are cached
under OUT/.render/, so an interrupted build continues where it stopped.
"""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile
from tqdm import tqdm

from training.data.audio_folder import cut_clips
from training.data.manifest import SAMPLE_RATE, DatasetWriter, assign_splits

CLIP_SECONDS = 8
COMPOSERS = ("beethoven", "mozart", "haydn", "bach", "schubert", "schumann", "chopin", "handel", "joplin", "scarlatti", "clementi", "corelli")
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2")


def find_soundfont() -> str:
    for path in SOUNDFONTS:
        if os.path.isfile(path):
            return path
    raise RuntimeError("no General MIDI soundfont: install fluid-soundfont-gm (scripts/setup does)")


def corpus_pieces(composers=COMPOSERS) -> list[tuple[str, Path]]:
    """(composer, path) of every score in music21's bundled corpus for `composers`."""
    from music21 import corpus

    pieces = []
    for composer in composers:
        try:
            paths = corpus.getComposer(composer)
        except Exception:
            continue
        pieces += [(composer, Path(p)) for p in paths]
    return pieces


def piece_id(composer: str, path: Path) -> str:
    """A stable, readable name: composer/relative path inside the corpus."""
    parts = path.parts
    rel = "/".join(parts[parts.index("corpus") + 1 :]) if "corpus" in parts else path.name
    return rel if rel.startswith(composer) else f"{composer}/{rel}"


def _to_midi(path: Path, midi_path: str) -> None:
    from music21 import converter, instrument, repeat, stream

    score = converter.parse(str(path))
    if isinstance(score, stream.Opus):
        score = score.scores[0] if score.scores else score.flatten()
    parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    for part in parts:
        for old in list(part.recurse().getElementsByClass(instrument.Instrument)):
            old.activeSite.remove(old)
        part.insert(0, instrument.Piano())
    try:
        score.write("midi", fp=midi_path)
    except repeat.ExpanderException:
        # Badly formed repeats: play it straight through.
        from music21 import bar

        for rep in list(score.recurse().getElementsByClass(bar.Repeat)):
            rep.activeSite.remove(rep)
        for exp in list(score.recurse().getElementsByClass(repeat.RepeatExpression)):
            exp.activeSite.remove(exp)
        score.write("midi", fp=midi_path)


def render_piece(job) -> tuple[str, str | None, str | None]:
    """Renders one piece to OUT/.render/<hash>.flac (cached). Returns (id, file, error)."""
    pid, path, cache_dir, soundfont = job
    target = Path(cache_dir) / (hashlib.sha1(pid.encode()).hexdigest()[:16] + ".flac")
    if target.is_file():
        return pid, str(target), None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            midi = os.path.join(tmp, "piece.mid")
            wav = os.path.join(tmp, "piece.wav")
            _to_midi(Path(path), midi)
            subprocess.run(
                ["fluidsynth", "-ni", "-q", "-F", wav, "-r", str(SAMPLE_RATE), "-g", "0.5", soundfont, midi],
                capture_output=True, check=True, timeout=600,
            )
            audio, rate = soundfile.read(wav, dtype="float32", always_2d=True)
            if rate != SAMPLE_RATE:
                raise RuntimeError(f"fluidsynth rendered at {rate} Hz")
            partial = str(target) + ".part.flac"
            soundfile.write(partial, audio.mean(axis=1), SAMPLE_RATE, subtype="PCM_16")
            os.replace(partial, target)
        return pid, str(target), None
    except Exception as error:
        return pid, None, f"{type(error).__name__}: {str(error)[:200]}"


def build_piano(out: str | Path, limit: int = 0, composers=COMPOSERS, scale_mode: str = "minmax",
                workers: int = 0, progress: bool = True, max_hours: float = 0.0) -> dict:
    """Builds the piano set into `out`; returns its manifest.

    Args:
      limit: render at most this many pieces (the shortest files first, round-robin over
        composers), for quick builds; 0 renders all.
      max_hours: stop adding clips once this much audio is in (0: no cap).
    """
    if not shutil.which("fluidsynth"):
        raise RuntimeError("fluidsynth is not installed (scripts/setup installs it)")
    soundfont = find_soundfont()
    pieces = corpus_pieces(composers)
    if not pieces:
        raise RuntimeError("music21's corpus is missing: pip install music21")
    if limit:
        by_composer = {}
        for composer, path in sorted(pieces, key=lambda cp: cp[1].stat().st_size):
            by_composer.setdefault(composer, []).append((composer, path))
        chosen = []
        while len(chosen) < limit and any(by_composer.values()):
            for group in by_composer.values():
                if group and len(chosen) < limit:
                    chosen.append(group.pop(0))
        pieces = chosen
    out = Path(out)
    cache = out / ".render"
    cache.mkdir(parents=True, exist_ok=True)
    ids = [piece_id(c, p) for c, p in pieces]
    jobs = [(pid, str(p), str(cache), soundfont) for pid, (_, p) in zip(ids, pieces)]
    writer = DatasetWriter(out, CLIP_SECONDS * SAMPLE_RATE, "piano", scale_mode)
    failed, rendered = [], {}
    workers = workers or max(1, os.cpu_count() or 1)
    rendered_seconds = 0.0
    # spawn, not fork: this may run inside a process where JAX's threads are running.
    with futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for pid, file, error in tqdm(pool.map(render_piece, jobs), total=len(jobs), desc="pieces", unit="piece", disable=not progress):
            if error:
                failed.append({"piece": pid, "error": error})
                continue
            rendered[pid] = file
            rendered_seconds += soundfile.info(file).duration
            if max_hours and rendered_seconds >= max_hours * 3600:
                pool.shutdown(wait=True, cancel_futures=True)  # enough audio: skip the rest
                break
    # Split by piece among the pieces that rendered (so a --max-hours or --limit build
    # still has valid and test pieces).
    splits = assign_splits(list(rendered))
    seconds = 0.0
    for pid in ids:
        if pid not in rendered or (max_hours and seconds >= max_hours * 3600):
            continue
        audio, _ = soundfile.read(rendered[pid], dtype="float32")
        for clip in cut_clips(audio, writer.clip_len, SAMPLE_RATE):  # >= 1 s
            if np.abs(clip).max() < 1e-3:  # silence between movements
                continue
            writer.add_audio(splits[pid], clip, source=pid)
            seconds += len(clip) / SAMPLE_RATE
    if writer.count() == 0:
        raise RuntimeError(f"no piece rendered; first errors: {failed[:3]}")
    return writer.finish(
        source="music21 corpus rendered with FluidSynth (" + os.path.basename(soundfont) + ", GM piano)",
        composers=sorted({c for c, _ in pieces}),
        pieces=len(rendered),
        failed=failed,
        split_by="piece",
    )
