"""The sample library: recording, crash recovery, edits, undo, export."""

from __future__ import annotations

import errno
import os
import sqlite3

import numpy as np
import pytest
import soundfile as sf
from conftest import crash
from full_disk import FullDiskFile

from app import library as lib
from app.library import Library, LibraryError


def tone(seconds: float, freq: float = 440.0, voices: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * lib.RATE)) / lib.RATE
    return np.stack([0.5 * np.sin(2 * np.pi * freq * (v + 1) * t) for v in range(voices)]).astype(np.float32)


META = {"checkpoint": "piano-realtime", "checkpoint_path": "/x", "temperature": 0.9, "top_p": 0.95, "random_seed": 7}


def test_a_take_written_before_the_random_seed_was_named_so_reads_the_same(tmp_path):
    """Earlier versions wrote and read the random seed in the column `seed`; it stays
    there, so their libraries open unchanged and their takes keep their random seed."""
    with Library(tmp_path) as library:
        library.add_take(tone(0.1), META)
    with sqlite3.connect(tmp_path / "library.sqlite") as db:
        assert db.execute("SELECT seed FROM takes").fetchall() == [(7,)]
        db.execute("UPDATE takes SET seed = 42")  # as an earlier version would have saved it
    db.close()
    with Library(tmp_path) as library:
        (take,) = library.takes()
        assert take.random_seed == 42


def test_record_incrementally_and_list(tmp_path):
    with Library(tmp_path) as library:
        writer = library.begin_take(dict(META, voices=2, seed_audio="mic", seed_frames=160, mood="calm"))
        audio = tone(1.0, voices=2)
        for i in range(0, audio.shape[1], 1000):
            writer.write(audio[:, i : i + 1000])
        assert library.takes() == []  # not listed while recording
        take = writer.finish()
        listed = library.takes()
        assert [t.id for t in listed] == [take.id]
        assert take.frames == 16000 and take.voices == 2 and take.duration == 1.0
        assert take.checkpoint == "piano-realtime" and take.temperature == 0.9 and take.top_p == 0.95
        assert take.random_seed == 7 and take.seed_audio == "mic" and take.seed_frames == 160
        assert take.extra == {"mood": "calm"}
        assert take.thumbnail.shape == (2, lib.THUMBNAIL_BUCKETS)
        assert 0.3 < take.thumbnail[1].max() <= 0.5 and take.thumbnail[0].min() < -0.3
        data = take.read()
        assert data.shape == (16000, 2)
        np.testing.assert_allclose(data.T, audio, atol=1 / 2**14)
        assert not any(library.partial_dir.iterdir())


def test_empty_take_is_dropped(tmp_path):
    with Library(tmp_path) as library:
        assert library.begin_take(META).finish() is None
        assert library.takes() == []
        with sqlite3.connect(tmp_path / "library.sqlite") as db:
            assert db.execute("select count(*) from takes").fetchone()[0] == 0


def test_crash_while_recording_is_recovered(tmp_path):
    library = Library(tmp_path)
    writer = library.begin_take(dict(META, voices=2))
    writer.write(tone(0.5, voices=2))
    writer._file.write(b"\x00\x00\x80")  # a torn frame at the crash
    writer._file.flush()
    crash(library)
    reopened = Library(tmp_path)
    assert reopened.recovered == [writer.id]
    (take,) = reopened.takes()
    assert take.recovered and take.frames == 8000 and take.voices == 2
    assert take.read().shape == (8000, 2)
    assert not any(reopened.partial_dir.iterdir())
    reopened.close()


def test_crash_with_nothing_recorded_is_removed(tmp_path):
    library = Library(tmp_path)
    writer = library.begin_take(META)
    (library.partial_dir / "stray-file.f32").write_bytes(b"junk")  # a file with no row
    crash(library)
    reopened = Library(tmp_path)
    assert reopened.removed == [writer.id] and reopened.takes() == []
    assert not any(reopened.partial_dir.iterdir())
    with sqlite3.connect(tmp_path / "library.sqlite") as db:
        assert db.execute("select count(*) from takes").fetchone()[0] == 0
    reopened.close()


def test_crash_between_rename_and_commit(tmp_path):
    library = Library(tmp_path)
    writer = library.begin_take(META)
    writer.write(tone(0.25)[0])
    writer._file.close()
    sf.write(str(library.takes_dir / f"{writer.id}.flac"), tone(0.25)[0], lib.RATE)
    crash(library)
    reopened = Library(tmp_path)
    (take,) = reopened.takes()
    assert take.id == writer.id and take.recovered and take.frames == 4000
    reopened.close()


def test_crash_while_encoding_the_flac(tmp_path):
    library = Library(tmp_path)
    writer = library.begin_take(META)
    writer.write(tone(0.25)[0])
    (library.partial_dir / f"{writer.id}.flac").write_bytes(b"fLaC\0\0")  # killed inside finish()'s sf.write
    crash(library)
    with Library(tmp_path) as reopened:
        assert reopened.recovered == [writer.id] and reopened.get(writer.id).frames == 4000
        assert reopened.check() == []


def test_crash_after_commit_leaves_no_raw_file(tmp_path):
    library = Library(tmp_path)
    take = library.add_take(tone(0.25)[0], META)
    (library.partial_dir / f"{take.id}.f32").write_bytes(b"\0" * 64)  # killed before its unlink
    crash(library)
    with Library(tmp_path) as reopened:
        assert reopened.check() == [] and reopened.get(take.id).frames == 4000


def test_crash_between_delete_commit_and_move(tmp_path):
    library = Library(tmp_path)
    kept, deleted = library.add_take(tone(0.2)[0], META), library.add_take(tone(0.2)[0], META)
    with library._tx() as db:  # what delete() commits before it moves the file
        db.execute("UPDATE takes SET deleted = 1 WHERE id = ?", (deleted.id,))
    crash(library)
    with Library(tmp_path) as reopened:
        assert [t.id for t in reopened.takes()] == [kept.id] and reopened.check() == []


def test_check_reports_what_is_wrong(tmp_path):
    with Library(tmp_path) as library:
        short, missing = library.add_take(tone(0.25)[0], META), library.add_take(tone(0.25)[0], META)
        assert library.check() == []
        sf.write(str(short.path), tone(0.1)[0], lib.RATE)
        missing.path.unlink()
        (library.takes_dir / "stray.flac").write_bytes(b"x")
        writer = library.begin_take(META)
        problems = library.check()
        assert len(problems) == 4
        assert f"take {short.id}: {short.path} holds 1600 frames x 1 voices, the library says 4000 x 1" in problems
        assert any(missing.id in p and "cannot read" in p for p in problems)
        assert any(writer.id in p and "being recorded" in p for p in problems)
        assert any("stray.flac belongs to no take" in p for p in problems)
        writer.abort()


def test_one_process_at_a_time(tmp_path):
    library = Library(tmp_path)
    with pytest.raises(LibraryError, match=rf"open in another HarmonicRNN Studio \(process {os.getpid()}\)"):
        Library(tmp_path)
    library.close()
    Library(tmp_path).close()
    library = Library(tmp_path)
    crash(library)  # a dead process holds nothing
    Library(tmp_path).close()


def test_disk_full_while_recording_leaves_nothing(tmp_path):
    with Library(tmp_path) as library:
        writer = library.begin_take(META)
        writer.write(tone(0.1)[0])

        writer._file = FullDiskFile()
        with pytest.raises(LibraryError, match="disk is full"):
            writer.write(tone(0.1)[0])
        assert library.takes() == []
        assert not any(library.partial_dir.iterdir())
        with sqlite3.connect(tmp_path / "library.sqlite") as db:
            assert db.execute("select count(*) from takes").fetchone()[0] == 0


def test_disk_full_while_finishing(tmp_path, monkeypatch):
    with Library(tmp_path) as library:
        writer = library.begin_take(META)
        writer.write(tone(0.1)[0])

        def full(*args, **kwargs):
            raise sf.LibsndfileError(0, "Error : No space left on device")

        monkeypatch.setattr(lib.sf, "write", full)
        with pytest.raises(LibraryError, match="disk is full"):
            writer.finish()
        assert library.takes() == []
        assert not any(library.partial_dir.iterdir()) and not any(library.takes_dir.glob("*.flac"))


def test_filter_sort_rename_star(tmp_path):
    with Library(tmp_path) as library:
        a = library.add_take(tone(0.2)[0], dict(META, name="Alpha"))
        b = library.add_take(tone(0.4)[0], dict(META, name="beta 100%", checkpoint="digits"))
        c = library.add_take(tone(0.3)[0], dict(META, name="Gamma"))

        def names(takes):
            return [t.name for t in takes]

        assert names(library.takes(order="name", descending=False)) == ["Alpha", "beta 100%", "Gamma"]
        assert names(library.takes(order="duration")) == ["beta 100%", "Gamma", "Alpha"]
        assert names(library.takes(checkpoint="digits")) == ["beta 100%"]
        assert names(library.takes(text="100%")) == ["beta 100%"]
        assert names(library.takes(text="A", order="name", descending=False)) == ["Alpha", "beta 100%", "Gamma"]
        assert library.checkpoints() == ["digits", "piano-realtime"]
        today = a.created[:10]
        assert len(library.takes(since=today, until=today)) == 3
        assert library.takes(until="2000-01-01") == []
        library.rename(c.id, "  Delta ")
        library.set_starred(a.id)
        assert library.get(c.id).name == "Delta"
        assert names(library.takes(starred=True)) == ["Alpha"]
        with pytest.raises(LibraryError):
            library.rename(b.id, "   ")


def test_delete_undo_and_purge(tmp_path):
    library = Library(tmp_path)
    a = library.add_take(tone(0.2)[0], META)
    b = library.add_take(tone(0.2)[0], META)
    assert library.delete([a.id]) == [a.id]
    assert [t.id for t in library.takes()] == [b.id]
    assert not a.path.exists()
    library.undelete([a.id])
    assert {t.id for t in library.takes()} == {a.id, b.id}
    assert library.get(a.id).read().shape == (3200, 1)
    library.delete([a.id, b.id])
    library.close()  # purges the trash
    reopened = Library(tmp_path)
    assert reopened.takes() == []
    assert not any(reopened.trash_dir.iterdir()) and not any(reopened.takes_dir.glob("*.flac"))
    reopened.close()


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_export_formats_and_rates(tmp_path, fmt, rate):
    with Library(tmp_path / "lib") as library:
        take = library.add_take(tone(0.5, voices=2), dict(META, name="two/voices"))
        progress = []
        (path,) = library.export([take.id], tmp_path / "out", fmt, rate, progress=lambda i, n: progress.append((i, n)))
        assert path.name == f"two_voices.{fmt}" and progress == [(1, 1)]
        data, got_rate = sf.read(str(path), dtype="float32", always_2d=True)
        assert got_rate == rate and data.shape[1] == 2
        assert abs(data.shape[0] - rate // 2) <= rate // 100
        assert np.abs(data).max() == pytest.approx(0.5, abs=0.1)  # Vorbis overshoots a little
        (mono,) = library.export([take.id], tmp_path / "out", fmt, rate, mono=True)
        assert mono != path and sf.info(str(mono)).channels == 1


def test_export_errors(tmp_path, monkeypatch):
    with Library(tmp_path / "lib") as library:
        take = library.add_take(tone(0.1)[0], META)
        with pytest.raises(LibraryError, match="format"):
            library.export([take.id], tmp_path, "mp3")
        with pytest.raises(LibraryError, match="rate"):
            library.export([take.id], tmp_path, "wav", 22050)

        def full(path, *args, **kwargs):
            open(path, "wb").write(b"RIFF")
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(lib.sf, "write", full)
        with pytest.raises(LibraryError, match="disk is full"):
            library.export([take.id], tmp_path / "out", "wav")
        assert not any((tmp_path / "out").iterdir())


def test_default_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HARMONIC_LIBRARY", str(tmp_path / "mine"))
    assert lib.default_root() == tmp_path / "mine"
    monkeypatch.delenv("HARMONIC_LIBRARY")
    assert lib.default_root().name == "library"
