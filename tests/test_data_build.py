"""Building data sets from the command line: digits and piano (from exported scores) at --limit size, and any
audio folder, whose unreadable files are skipped and reported."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from engine.cli import SELF_COMMAND
from engine.mulaw import SILENCE, decode, encode
from training.data.digits import FLITE_VOICES, all_voices
from training.data.loader import BatchPlan, Split, eval_batches
from training.data.manifest import assign_splits, read_manifest
from training.data.piano import (
    BREAK_FADE_SECONDS,
    GAP_SECONDS,
    ONSET,
    TRAINING_PIANOS,
    Performance,
    add_breaks,
    build_piano,
    cache_render,
    cached_render,
    split_clips,
)


def harmonic(*args, timeout=600):
    cmd = [*SELF_COMMAND, *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def check_arrays(directory, clip_len):
    manifest = read_manifest(directory)
    assert manifest["clip_len"] == clip_len
    for split in ("train", "valid", "test"):
        data = Split(directory, split)
        assert data.tokens.dtype == np.uint8 and data.tokens.shape[1] == clip_len
        assert len(data) == manifest["splits"][split]["clips"] > 0
        assert np.all((data.lengths > 0) & (data.lengths <= clip_len))
    return manifest


def test_build_digits_limit(tmp_path):
    out = tmp_path / "digits"
    stdout = harmonic("data", "build", "digits", "--out", out, "--limit", 40)
    assert "digits data set" in stdout
    manifest = check_arrays(out, 16000)
    assert manifest["clips"] == 40
    # Split by voice: no test voice is a training voice.
    assert manifest["test_voices"] and not set(manifest["test_voices"]) & set(manifest["valid_voices"])
    labels = np.load(out / "train_labels.npy")
    assert labels.min() >= 0 and labels.max() <= 9
    tokens = Split(out, "train").tokens
    assert tokens.std() > 5  # speech, not silence


def test_build_digits_of_one_synthesizer(tmp_path):
    """flite's voices alone keep the splits they have in the full set: a test set of a synthesizer never heard."""
    out = tmp_path / "flite"
    harmonic("data", "build", "digits", "--synthesizers", "flite", "--out", out)
    manifest = read_manifest(out)
    full = assign_splits(all_voices())
    assert manifest["voices"] == len(all_voices(("flite",))) == len(FLITE_VOICES)
    for split in ("valid", "test"):
        assert manifest[f"{split}_voices"] == sorted(v for v in full if v.startswith("flite:") and full[v] == split)
    proc = subprocess.run(
        [*SELF_COMMAND, "data", "build", "digits", "--synthesizers", "mbrola", "--out", tmp_path / "x"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "unknown synthesizer mbrola" in proc.stderr and "Traceback" not in proc.stderr


def silent_samples(directory: Path, split: str) -> int:
    """How many samples of the split's clips (padding aside) are digital silence."""
    data = Split(directory, split)
    return sum(int((clip[:length] == SILENCE).sum()) for clip, length in zip(data.tokens, data.lengths, strict=True))


def build_args(out: Path, tmp_path: Path, works: int) -> list:
    """`harmonic data build piano` of the first `works` scores exported into tmp_path/midi."""
    midi, fonts = tmp_path / "midi", tmp_path / "fonts"
    return [
        "data",
        "build",
        "piano",
        "--out",
        out,
        "--midi",
        midi,
        "--soundfonts",
        fonts,
        "--limit",
        works,
        "--workers",
        2,
    ]


def test_build_piano_from_exported_scores(tmp_path):
    """Scores exported as MIDI, pianos cut from the system soundfonts, rendered: every
    work normalised to its own peak, so silence stays at the silence token."""
    harmonic("data", "midi", "--out", tmp_path / "midi", "--limit", 6, "--workers", 2)
    index = json.loads((tmp_path / "midi" / "index.json").read_text())
    assert len(index["works"]) >= 6 and all((tmp_path / "midi" / w["file"]).is_file() for w in index["works"])
    harmonic("data", "soundfonts", "--out", tmp_path / "fonts")
    assert {p.name for p in (tmp_path / "fonts").iterdir()} >= {"FluidR3_GM-pianos.sf2", "TimGM6mb-pianos.sf2"}
    out, renders = tmp_path / "piano", tmp_path / "renders"
    harmonic(*build_args(out, tmp_path, 6), "--render-cache", renders)
    assert len(list(renders.glob("*.npy"))) == 6 and not list(renders.glob(".*"))  # no temporary left
    manifest = read_manifest(out)
    assert manifest["works"] == 6 and manifest["clip_len"] == 128000 and manifest["hours"] > 0
    tokens = np.concatenate([Split(out, s).tokens.ravel() for s in ("train", "valid", "test") if len(Split(out, s))])
    audio = decode(tokens.astype(np.int32))
    assert 0.5 < np.abs(audio).max() <= 0.95  # peak-normalised per work, not per clip
    assert abs(audio.mean()) < 0.005  # no DC offset: silence is silence
    for split in ("train", "valid", "test"):  # no clip ends in a work's silent tail (at most a gap)
        data = Split(out, split)
        for clip, length in zip(data.tokens, data.lengths, strict=True):
            sounding = np.flatnonzero(clip[:length] != SILENCE)
            assert length - 1 - sounding[-1] < (GAP_SECONDS + 0.05) * 16000
    # --gap-seconds 0: the same works joined with no silence between them, from the renders
    # kept by the first build (with no soundfonts at hand, a render would fail).
    joined, no_fonts = tmp_path / "piano-no-gap", tmp_path / "no-fonts"
    no_fonts.mkdir()
    args = build_args(joined, tmp_path, 6)
    args[args.index(tmp_path / "fonts")] = no_fonts
    harmonic(*args, "--gap-seconds", 0, "--render-cache", renders)
    assert read_manifest(joined)["gap_seconds"] == 0 and manifest["gap_seconds"] == GAP_SECONDS
    assert manifest["splits"]["train"]["sources"] > 1  # works do join
    for split, info in manifest["splits"].items():  # a gap less at each join of a split's works
        joins = max(0, info["sources"] - 1)
        fewer = silent_samples(out, split) - silent_samples(joined, split)
        assert abs(fewer - joins * GAP_SECONDS * 16000) < 16000
    # --breaks-seconds: pauses of 0.25-0.75 s inside the works as well, from the same renders.
    paused = tmp_path / "piano-breaks"
    args[args.index(joined)] = paused
    harmonic(*args, "--breaks-seconds", 4, "--render-cache", renders)
    breaks = read_manifest(paused)["breaks"]
    added = sum(silent_samples(paused, split) - silent_samples(out, split) for split in manifest["splits"])
    assert breaks > 0 and 0.25 * 16000 * breaks <= added <= 0.75 * 16000 * breaks + 16000

    holdout = tmp_path / "holdout"
    harmonic(
        "data",
        "build",
        "piano-holdout",
        "--out",
        holdout,
        "--soundfonts",
        tmp_path / "fonts",
        "--limit",
        3,
        "--workers",
        2,
    )
    manifest = read_manifest(holdout)
    assert manifest["works"] == 3 and manifest["splits"]["test"]["sources"] == 3  # all of it is the hold-out
    assert "MuseScore_General_Lite-pianos.sf3" in manifest["source"]


def test_breaks_pause_before_notes_that_follow_a_quiet_moment():
    """Notes that decay away, then a held tone: pauses go only before the notes, each one
    0.25-0.75 s of digital silence followed by the note, and the music around them is kept."""
    t = np.arange(24_000) / 16_000
    decaying = np.tile(0.5 * np.sin(2 * np.pi * 440 * t) * np.exp(-4 * t), 40)  # a note every 1.5 s, -52 dB at its end
    held = 0.3 * np.sin(2 * np.pi * 220 * np.arange(30 * 16_000) / 16_000)  # 30 s, never quiet
    tokens = encode(np.concatenate([decaying, held]).astype(np.float32)).astype(np.uint8)
    paused, pauses = add_breaks(tokens, 4.0, GAP_SECONDS, seed=7)
    assert np.array_equal(add_breaks(tokens, 4.0, GAP_SECONDS, seed=7)[0], paused)  # reproducible
    assert 5 <= len(pauses) <= 30  # about one every 4 s of the 60 s of notes
    assert all(0.25 * 16_000 <= length <= 0.75 * 16_000 for _, length in pauses)
    assert all(cut % 24_000 >= 24_000 - 320 and cut < decaying.size for cut, _ in pauses)  # 20 ms before a note
    kept, at = [], 0
    for shift, (cut, length) in zip(np.cumsum([0] + [n for _, n in pauses[:-1]]), pauses, strict=True):
        kept.append(paused[at : cut + shift])
        pause = paused[cut + shift : cut + shift + length]
        assert np.all(pause == SILENCE) and np.abs(decode(paused[cut + shift + length :][:320])).max() > ONSET
        at = cut + shift + length
    kept.append(paused[at:])
    changed = np.flatnonzero(np.concatenate(kept) != tokens)  # only the fades before the pauses
    cuts = np.array([cut for cut, _ in pauses])
    assert all(np.any((cuts > i) & (cuts - i <= BREAK_FADE_SECONDS * 16_000)) for i in changed)
    for breaks, gap in ((-1.0, GAP_SECONDS), (4.0, 0.0)):  # a pause needs a length
        with pytest.raises(ValueError, match="--breaks-seconds must be 0"):
            build_piano("unused", "unused", "unused", breaks_seconds=breaks, gap_seconds=gap)


def test_a_smaller_room_share_only_takes_works_out_of_their_rooms(tmp_path):
    works = [f"composer/work-{i}" for i in range(200)]
    default = [Performance.for_work(w, TRAINING_PIANOS) for w in works]
    dry = [Performance.for_work(w, TRAINING_PIANOS, room_share=0.0) for w in works]
    assert 70 < sum(p.room_seconds > 0 for p in default) < 130 and not any(p.room_seconds for p in dry)
    assert [(p.piano, p.velocity_scale) for p in dry] == [(p.piano, p.velocity_scale) for p in default]
    midi = tmp_path / "midi"
    midi.mkdir()
    (midi / "index.json").write_text(json.dumps({"works": []}))
    result = subprocess.run(
        [*SELF_COMMAND, "data", "build", "piano", "--out", tmp_path / "out", "--midi", midi, "--room-share", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and result.stderr.strip().splitlines() == [
        "harmonic data: --room-share must lie in [0, 1], got 2.0"
    ], result.stderr


def test_a_render_cut_short_is_rendered_again(tmp_path):
    tokens = np.arange(1000, dtype=np.uint8)
    cache_render(tmp_path, "work", tokens)
    assert np.array_equal(cached_render(tmp_path, "work"), tokens) and cached_render(tmp_path, "other") is None
    path = tmp_path / "work.npy"
    path.write_bytes(path.read_bytes()[:500])  # as a copy cut short (a killed rsync, a full disk) leaves it
    assert cached_render(tmp_path, "work") is None


def test_a_splits_works_play_in_turn_and_are_cut_across_their_ends():
    """Two works, 1.5 s and 9 s, half a second apart: the first clip holds all of the
    first work, the gap and the start of the second; the second clip the rest, padded."""
    first, second = np.full(24000, 200, np.uint8), np.full(144000, 60, np.uint8)
    (a, a_length, a_source), (b, b_length, b_source) = split_clips([("one", first), ("two", second)], 128000)
    assert (a_length, a_source, b_length, b_source) == (128000, "one", 48000, "two")
    assert (a[:24000] == 200).all() and (a[24000:32000] == SILENCE).all() and (a[32000:] == 60).all()
    assert (b[:48000] == 60).all() and (b[48000:] == SILENCE).all()
    assert split_clips([("rest", np.full(64000, SILENCE, np.uint8))], 128000) == []  # nothing audible
    ((joined, length, source),) = split_clips([("one", first), ("two", second[:96000])], 128000, gap_seconds=0)
    assert (length, source) == (120000, "one")  # no gap: the second work starts where the first ends
    assert (joined[:24000] == 200).all() and (joined[24000:120000] == 60).all()


def test_folder_skips_bad_files_and_pads_short_clips(tmp_path):
    src = tmp_path / "my audio"
    (src / "sub").mkdir(parents=True)
    t = np.arange(44100 * 3) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 220 * t)], axis=1) * 0.3
    soundfile.write(src / "a.wav", stereo, 44100)  # 3 s stereo at 44.1 kHz
    soundfile.write(src / "sub" / "b.flac", np.sin(2 * np.pi * 300 * t[:22050]), 22050)  # 1 s
    soundfile.write(src / "c.ogg", 0.2 * np.sin(2 * np.pi * 500 * t[:48000]), 48000)
    (src / "broken.wav").write_bytes(b"RIFF....WAVEfmt not really audio")
    (src / "empty.mp3").write_bytes(b"")
    (src / "notes.txt").write_text("not audio, ignored")
    out = tmp_path / "set"
    stdout = harmonic("data", "build", "folder", "--src", src, "--out", out, "--clip-seconds", 2)
    assert "skipped broken.wav" in stdout and "skipped empty.mp3" in stdout
    manifest = read_manifest(out)
    assert sorted(s["file"] for s in manifest["skipped"]) == ["broken.wav", "empty.mp3"]
    assert manifest["files"] == 3
    lengths = np.concatenate([Split(out, s).lengths for s in ("train", "valid", "test")])
    # a.wav: 2 s + 1 s (padded, length kept); b.flac: 1 s; c.ogg: 1 s.
    assert sorted(lengths.tolist()) == [16000, 16000, 16000, 32000]


def test_batches_are_deterministic_and_masked(tmp_path):
    from training.data.manifest import DatasetWriter

    writer = DatasetWriter(tmp_path, 64, "test")
    for split in ("train", "valid", "test"):
        writer.add_audio(split, np.linspace(-1, 1, 40))  # 40 real samples, 24 padding
        writer.add_audio(split, np.linspace(-1, 1, 64))
    writer.finish()
    split = Split(tmp_path, "train")
    plan = BatchPlan(split, batch_size=4, seq_len=48, seed=3)
    a, mask = plan.block(7, slice(0, 4), slice(0, 48))
    b, _ = plan.block(7, slice(0, 4), slice(0, 48))
    assert np.array_equal(a, b)
    left, _ = plan.block(7, slice(0, 4), slice(0, 24))
    right, _ = plan.block(7, slice(0, 4), slice(24, 48))
    assert np.array_equal(np.concatenate([left, right], 1), a)  # shards compose
    rows, starts = plan.plan(7)
    for i, row in enumerate(rows):
        assert mask[i].sum() == min(48, split.lengths[row] - starts[i])
    tokens, mask = next(eval_batches(split, 4, 16))
    assert tokens.shape == (4, 64) and mask.sum() == 104
