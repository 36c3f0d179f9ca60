"""The piano hold-out: music no corpus holds, played by a piano no training set uses.

Procedurally written pieces (scales in both hands, chord progressions block and
arpeggiated, melodies over an accompaniment), in random keys, tempi and registers, are
written as MIDI and rendered like the piano set (`training.data.piano.render`) with the
hold-out piano only: MuseScore General's grand. Every work goes to the test split. It
measures how the model copes with new music on a piano it never heard, as a user's own
piano recording would ask of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from music21 import chord, instrument, note, stream, tempo

from training.data.score_midi import INDEX
from training.files import replacing, write_text

MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = ((1, 4, 5, 1), (1, 6, 4, 5), (2, 5, 1, 1), (1, 5, 6, 4), (6, 4, 1, 5))


def _degree(tonic: int, mode: tuple, step: int) -> int:
    """MIDI pitch of scale step `step` (0 = tonic, may be negative or past the octave)."""
    octave, index = divmod(step, 7)
    return tonic + 12 * octave + mode[index]


def _triad(tonic: int, mode: tuple, root: int) -> list[int]:
    return [_degree(tonic, mode, root - 1 + k) for k in (0, 2, 4)]


def _scales(rng, tonic, mode) -> list[tuple[float, list[int], float]]:
    """(start beat, pitches, beats) events: the scale up and down, hands an octave apart."""
    steps = list(range(15)) + list(range(13, -1, -1))
    return [(i * 0.5, [_degree(tonic, mode, s), _degree(tonic, mode, s) - 12], 0.5) for i, s in enumerate(steps)]


def _progression(rng, tonic, mode) -> list[tuple[float, list[int], float]]:
    events, beat = [], 0.0
    arpeggiate = rng.random() < 0.5
    for _ in range(3):
        for root in PROGRESSIONS[rng.integers(len(PROGRESSIONS))]:
            chord = _triad(tonic, mode, root)
            bass = [chord[0] - 12]
            if arpeggiate:
                for k, pitch in enumerate(chord + [chord[1] + 12]):
                    events.append((beat + k, [pitch] + (bass if k == 0 else []), 1.0 if k else 4.0))
            else:
                events.append((beat, chord + bass, 4.0))
            beat += 4
    return events


def _melody(rng, tonic, mode) -> list[tuple[float, list[int], float]]:
    events, beat, step = [], 0.0, 7
    for bar in range(12):
        root = PROGRESSIONS[0][bar % 4]
        chord = _triad(tonic - 12, mode, root)
        for k in range(4):  # Alberti-like accompaniment in eighths
            events.append((beat + k, [chord[(0, 2, 1, 2)[k]]], 1.0))
        t = 0.0
        while t < 4:
            length = float(rng.choice([0.5, 1.0, 1.0, 2.0]))
            step = int(np.clip(step + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 2, 13))
            events.append((beat + t, [_degree(tonic, mode, step)], min(length, 4 - t)))
            t += length
        beat += 4
    return events


KINDS = {"scales": _scales, "progression": _progression, "melody": _melody}


def write_piece(path: Path, kind: str, seed: int) -> float:
    """Writes one procedural piece as MIDI; returns its length in seconds."""
    rng = np.random.default_rng(seed)
    tonic = 48 + int(rng.integers(12))  # C3..B3
    mode = MAJOR if rng.random() < 0.6 else MINOR
    bpm = int(rng.integers(66, 140))
    part = stream.Part()
    part.insert(0, instrument.Piano())
    part.insert(0, tempo.MetronomeMark(number=bpm))
    for beat, pitches, beats in KINDS[kind](rng, tonic, mode):
        element = note.Note(pitches[0]) if len(pitches) == 1 else chord.Chord(pitches)
        element.quarterLength = beats
        element.volume.velocity = int(rng.integers(50, 100))
        part.insert(beat, element)
    score = stream.Score([part])
    with replacing(path) as (temporary,):
        score.write("midi", fp=str(temporary))
    return float(score.highestTime) * 60 / bpm


def write_holdout_midi(out: str | Path, works: int = 60, seed: int = 0) -> dict:
    """`works` procedural pieces (kinds in turn) as MIDI in `out`, with an index like
    `harmonic data midi`'s; returns the index."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    for n in range(works):
        kind = list(KINDS)[n % len(KINDS)]
        name = f"holdout/{kind}-{n:03d}"
        file = f"{kind}-{n:03d}.mid"
        entries.append(
            {"id": name, "file": file, "seconds": round(write_piece(out / file, kind, seed * 100_003 + n), 2)}
        )
    hours = round(sum(w["seconds"] for w in entries) / 3600, 3)
    index = {"works": entries, "failed": [], "hours": hours}
    write_text(out / INDEX, json.dumps(index, indent=1))
    return index
