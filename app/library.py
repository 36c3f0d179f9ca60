"""The sample library: every take, saved as it is made, browsable and exportable.

No Qt here: the app drives it from worker threads and the GUI thread alike.

On disk (the root defaults to `platformdirs.user_data_dir("HarmonicRNN Studio")/library`,
or `$HARMONIC_LIBRARY`):

    ROOT/library.sqlite        one row per take (SQLite, WAL journal)
    ROOT/library.lock          held (flock) by the one process that has the library open
    ROOT/takes/ID.flac         finished takes: 16 kHz, 16-bit FLAC, one channel per voice
    ROOT/takes/.partial/ID.f32 a take being recorded: raw float32 frames, interleaved
    ROOT/takes/.trash/ID.flac  soft-deleted takes, until `purge_trash` (run at open/close)

Recording is crash-safe. `begin_take` inserts a row in state 'recording' and opens a raw
float32 file in `.partial/` that each `TakeWriter.write` appends to (and flushes), so
whatever reached the disk before a crash is readable frame by frame. We record raw
frames rather than a FLAC stream because a FLAC that was never closed is unreliable to
read back with libsndfile (we checked: an unclosed one has no length and reads stop with
"psf_fseek() failed"). `finish` encodes the FLAC into `.partial/`, renames it into
`takes/` (atomic on one file system) and marks the row 'done' in one transaction.
`Library.open` recovers any take left 'recording': the readable whole frames become a
finished take marked `recovered`; an empty or unreadable one is removed with its row.
Files with no row are deleted. So the listed library is never half-written, and
`check()` finds nothing to report after an open, whenever the last process was killed.

One process at a time: `Library` holds an exclusive `flock` on `library.lock` while open,
and a second one is refused with a `LibraryError` naming the holder. The OS drops the
lock when its process dies, so a killed app never locks anyone out.

A full disk (ENOSPC) while recording, finishing or exporting raises `LibraryError` with
a clear message and leaves no half-written row or file behind.

Effects: a take keeps its dry audio (what the generator made, every voice) and, in the
`effects` column, the effects chain it was played through (`engine.effects.ChainSpec`
JSON with each plugin's state; '' for none). `Take.processed()` re-renders the processed
audio from the two. Libraries made before the column existed get it at open (their takes
have no chain).

Export (`export`): WAV (16-bit), FLAC (16-bit) or OGG (Vorbis) at 16 kHz or resampled
with soxr to 44.1 or 48 kHz, dry or processed (`ExportAudio`). A dry take with several
voices is exported with one channel per voice by default; `mono=True` mixes the voices
down to one channel (their mean). Processed audio is mono (the chain runs on the mix)
and includes the chain's tail.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import fcntl
import json
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO

import numpy as np
import platformdirs
import soundfile as sf
import soxr

from engine.audio import Stage
from engine.effects import ChainSpec, render_chain
from engine.errors import UserError, is_disk_full
from engine.mulaw import SAMPLE_RATE as RATE

THUMBNAIL_BUCKETS = 256
EXPORT_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS")}
EXPORT_RATES = (16000, 44100, 48000)
ENV_VAR = "HARMONIC_LIBRARY"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS takes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'recording',   -- recording | done
    deleted INTEGER NOT NULL DEFAULT 0,
    starred INTEGER NOT NULL DEFAULT 0,
    recovered INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,                     -- ISO 8601, UTC
    frames INTEGER NOT NULL DEFAULT 0,
    voices INTEGER NOT NULL DEFAULT 1,
    checkpoint TEXT NOT NULL DEFAULT '',
    checkpoint_path TEXT NOT NULL DEFAULT '',
    temperature REAL,
    top_p REAL,
    seed INTEGER,                              -- the random seed (Take.random_seed)
    seed_audio TEXT NOT NULL DEFAULT '',       -- where the seed audio came from ('' = none)
    seed_frames INTEGER NOT NULL DEFAULT 0,    -- leading frames of the take that are seed audio
    extra TEXT NOT NULL DEFAULT '{}',          -- JSON: anything else worth keeping
    thumbnail BLOB,                            -- float32 [2, THUMBNAIL_BUCKETS]: min, max
    effects TEXT NOT NULL DEFAULT ''           -- the effects chain played (ChainSpec JSON); '' = none
);
CREATE INDEX IF NOT EXISTS takes_created ON takes(created);
"""
# Columns added since the first schema, with their definitions: added at open when missing.
_ADDED_COLUMNS = {"effects": "TEXT NOT NULL DEFAULT ''"}

_META_FIELDS = (
    "name",
    "checkpoint",
    "checkpoint_path",
    "temperature",
    "top_p",
    "random_seed",
    "seed_audio",
    "seed_frames",
    "effects",
)
# Fields stored in a column of another name: the random seed keeps its first column name,
# "seed", so that libraries written by earlier versions open unchanged.
_COLUMN_OF = {"random_seed": "seed"}
# Seconds of the effects chain's ring-out kept after a processed take.
PROCESSED_TAIL_SECONDS = 2.0


class ExportAudio(enum.StrEnum):
    DRY = "dry"  # what the generator made, every voice
    PROCESSED = "processed"  # the voices' mix through the take's effects chain, with its tail


class LibraryError(Exception):
    """A library operation failed; the message is meant for the user."""


def default_root() -> Path:
    """$HARMONIC_LIBRARY, or the per-user data folder."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("HarmonicRNN Studio", appauthor=False)) / "library"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _io_error(action: str, error: BaseException) -> LibraryError:
    if is_disk_full(error):
        return LibraryError(f"The disk is full: could not {action}. Free some space and try again.")
    return LibraryError(f"Could not {action}: {error}")


def thumbnail(audio: np.ndarray, buckets: int = THUMBNAIL_BUCKETS) -> np.ndarray:
    """Min/max envelope of audio [n] or [n, voices] (voices mixed): float32 [2, buckets]."""
    audio = np.asarray(audio, np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    out = np.zeros((2, buckets), np.float32)
    if audio.size == 0:
        return out
    edges = np.linspace(0, audio.size, buckets + 1).astype(np.int64)
    for i in range(buckets):
        a, b = edges[i], max(edges[i + 1], edges[i] + 1)
        chunk = audio[a : min(b, audio.size)]
        if chunk.size:
            out[0, i], out[1, i] = chunk.min(), chunk.max()
    return out


@dataclasses.dataclass
class Take:
    """One take's metadata (a row of the library)."""

    id: str
    name: str
    created: str
    frames: int
    voices: int
    checkpoint: str
    checkpoint_path: str
    temperature: float | None
    top_p: float | None
    random_seed: int | None
    seed_audio: str
    seed_frames: int
    starred: bool
    recovered: bool
    extra: dict
    thumbnail: np.ndarray
    path: Path
    effects: str = ""  # the chain it was played through: engine.effects.ChainSpec JSON; '' = none

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.frames / RATE

    def read(self) -> np.ndarray:
        """The audio: float32 [frames, voices]."""
        try:
            audio, _ = sf.read(str(self.path), dtype="float32", always_2d=True)
        except (OSError, RuntimeError, sf.LibsndfileError) as error:
            raise LibraryError(f"Could not read take {self.name!r} ({self.path}): {error}") from error
        return audio

    def processed(self, tail_seconds: float = PROCESSED_TAIL_SECONDS, chain=None) -> np.ndarray:
        """The voices' mix re-rendered through the take's effects chain, float32
        [frames + tail], aligned with the dry audio (the chain's delay removed); the dry
        mix when the take has no chain. LibraryError if a plugin is missing or fails.

        chain: the take's chain already built (`engine.effects.EffectsChain` of its
          `effects`, fresh): pedalboard loads VST3 plugins on the main thread only, so a
          GUI builds the chain there and renders in a worker. None: built here.
        """
        mix = self.read().mean(axis=1)
        if not self.effects:
            return mix
        try:
            if chain is None:
                return render_chain(ChainSpec.from_json(self.effects), mix, tail_seconds)
            return np.concatenate(list(Stage(chain).aligned([mix], tail_seconds)))
        except (UserError, ValueError) as error:
            raise LibraryError(f"Could not re-render take {self.name!r} through its effects: {error}") from error


class TakeWriter:
    """Appends audio to a take being recorded. Use from one thread at a time.

    write(block): block is float32 [voices, n] (or [n] for one voice), values in [-1, 1].
    finish() -> Take: makes the take permanent. abort(): discards it.
    """

    def __init__(self, library: Library, take_id: str, voices: int):
        self.library = library
        self.id = take_id
        self.voices = voices
        self.frames = 0
        self.closed = False
        self._path = library.partial_dir / f"{take_id}.f32"
        self._file = open(self._path, "wb")

    def write(self, block: np.ndarray) -> None:
        if self.closed:
            raise LibraryError("this take is already finished")
        block = np.asarray(block, np.float32)
        if block.ndim == 1:
            block = block[None, :]
        if block.shape[0] != self.voices:
            raise ValueError(f"expected {self.voices} voices, got a block of shape {block.shape}")
        try:
            self._file.write(np.ascontiguousarray(block.T).tobytes())
            self._file.flush()
        except OSError as error:
            self.abort()
            raise _io_error("keep recording this take", error) from error
        self.frames += block.shape[1]

    def finish(self, **updates) -> Take | None:
        """Encodes the FLAC, moves it into place and commits the row. Returns the Take, or
        None when nothing was recorded (the take is then dropped). `updates` may change
        metadata fields known only at the end (e.g. name, seed_frames, extra)."""
        if self.closed:
            raise LibraryError("this take is already finished")
        self.closed = True
        try:
            self._file.close()
        except OSError as error:
            self.library._drop_partial(self.id)
            raise _io_error("save this take", error) from error
        return self.library._complete(self.id, self.voices, updates)

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._file.close()
            except OSError:
                pass
        self.library._drop_partial(self.id)


class Library:
    """A folder of takes with an SQLite index. Thread-safe (one lock around the DB)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_root()
        self.takes_dir = self.root / "takes"
        self.partial_dir = self.takes_dir / ".partial"
        self.trash_dir = self.takes_dir / ".trash"
        self.recovered: list[str] = []  # ids recovered at open
        self.removed: list[str] = []  # ids of interrupted takes that could not be recovered
        self._lock = threading.RLock()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock_file = self._hold_lock()
            for folder in (self.takes_dir, self.partial_dir, self.trash_dir):
                folder.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(self.root / "library.sqlite"), check_same_thread=False, isolation_level=None)
            self._db: sqlite3.Connection | None = db  # None once closed
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            _migrate(db)
        except (OSError, sqlite3.Error) as error:
            raise LibraryError(f"Cannot open the sample library at {self.root}: {error}") from error
        self.purge_trash()
        self._recover()

    # ---- lifetime ------------------------------------------------------------------

    def _hold_lock(self) -> IO[str]:
        """Locks the library for this process, or raises LibraryError naming the process
        that has it. flock, not a marker file: the kernel drops it when its holder dies."""
        handle = open(self.root / "library.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise LibraryError(
                f"The library {self.root} is open in another HarmonicRNN Studio (process {holder}); "
                "close that one first, or choose another library with --library."
            ) from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    def close(self) -> None:
        with self._lock:
            if self._db is None:
                return
            self.purge_trash()
            self._db.close()
            self._db = None
            self._lock_file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _tx(self):
        return _Transaction(self._db, self._lock)

    # ---- recording -----------------------------------------------------------------

    def begin_take(self, meta: dict | None = None, voices: int = 1) -> TakeWriter:
        """Starts a take. `meta` may hold name, checkpoint, checkpoint_path, temperature,
        top_p, random_seed, seed_audio, seed_frames and any other JSON-able keys (kept in extra)."""
        meta = dict(meta or {})
        voices = int(meta.pop("voices", voices))
        take_id = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        fields = {k: meta.pop(k) for k in _META_FIELDS if k in meta}
        name = fields.pop("name", None) or self._default_name(fields.get("checkpoint", ""))
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO takes (id, name, state, created, voices, extra) VALUES (?, ?, 'recording', ?, ?, ?)",
                    (take_id, name, _now(), voices, json.dumps(meta, default=str)),
                )
                for key, value in fields.items():
                    db.execute(f"UPDATE takes SET {_COLUMN_OF.get(key, key)} = ? WHERE id = ?", (value, take_id))
            return TakeWriter(self, take_id, voices)
        except (OSError, sqlite3.Error) as error:
            self._drop_partial(take_id)
            raise _io_error("start a new take", error) from error

    def add_take(self, audio: np.ndarray, meta: dict | None = None) -> Take | None:
        """Saves finished audio ([n] or [voices, n]) as a take in one go; None (nothing
        saved) when `audio` has no samples, as `TakeWriter.finish`."""
        audio = np.asarray(audio, np.float32)
        if audio.ndim == 1:
            audio = audio[None]
        writer = self.begin_take(meta, voices=audio.shape[0])
        writer.write(audio)
        return writer.finish()

    def _default_name(self, checkpoint: str) -> str:
        stamp = _dt.datetime.now().strftime("%b %d %H:%M")
        return f"{checkpoint or 'take'} {stamp}"

    def _read_partial(self, take_id: str, voices: int) -> np.ndarray:
        path = self.partial_dir / f"{take_id}.f32"
        raw = np.fromfile(path, dtype="<f4") if path.exists() else np.zeros(0, np.float32)
        usable = (raw.size // voices) * voices
        audio = raw[:usable].reshape(-1, voices)
        return np.nan_to_num(np.clip(audio, -1.0, 1.0))

    def _complete(self, take_id: str, voices: int, updates: dict, recovered: bool = False) -> Take | None:
        audio = self._read_partial(take_id, voices)
        if audio.shape[0] == 0:
            self._drop_partial(take_id)
            return None
        tmp = self.partial_dir / f"{take_id}.flac"
        final = self.takes_dir / f"{take_id}.flac"
        try:
            sf.write(str(tmp), audio, RATE, format="FLAC", subtype="PCM_16")
            os.replace(tmp, final)
        except (OSError, RuntimeError, sf.LibsndfileError) as error:
            self._drop_partial(take_id)
            raise _io_error("save this take", error) from error
        self._mark_done(take_id, audio, updates, recovered)
        (self.partial_dir / f"{take_id}.f32").unlink(missing_ok=True)
        return self.get(take_id)

    def _mark_done(self, take_id: str, audio: np.ndarray, updates: dict, recovered: bool) -> None:
        updates = dict(updates)
        extra_updates = {k: updates.pop(k) for k in list(updates) if k not in _META_FIELDS}
        try:
            with self._tx() as db:
                row = db.execute("SELECT extra FROM takes WHERE id = ?", (take_id,)).fetchone()
                extra = json.loads(row["extra"]) if row else {}
                extra.update(extra_updates)
                for key, value in updates.items():
                    db.execute(f"UPDATE takes SET {_COLUMN_OF.get(key, key)} = ? WHERE id = ?", (value, take_id))
                db.execute(
                    "UPDATE takes SET state = 'done', frames = ?, thumbnail = ?, recovered = ?, extra = ? WHERE id = ?",
                    (
                        int(audio.shape[0]),
                        thumbnail(audio).tobytes(),
                        int(recovered),
                        json.dumps(extra, default=str),
                        take_id,
                    ),
                )
        except sqlite3.Error as error:
            (self.takes_dir / f"{take_id}.flac").unlink(missing_ok=True)
            self._drop_partial(take_id)
            raise _io_error("record this take in the library", error) from error

    def _drop_partial(self, take_id: str) -> None:
        for suffix in (".f32", ".flac"):
            (self.partial_dir / f"{take_id}{suffix}").unlink(missing_ok=True)
        try:
            with self._tx() as db:
                db.execute("DELETE FROM takes WHERE id = ? AND state = 'recording'", (take_id,))
        except sqlite3.Error:
            pass  # the row stays 'recording' and is cleaned up at the next open

    def _query(self, sql: str, args: Sequence = ()) -> list[sqlite3.Row]:
        with self._lock:
            if self._db is None:
                raise LibraryError("the library is closed")
            return self._db.execute(sql, args).fetchall()

    def _recover(self) -> None:
        """Finishes or removes takes interrupted by a crash; deletes stray files."""
        for row in self._query("SELECT id, voices FROM takes WHERE state = 'recording'"):
            take_id, voices = row["id"], max(1, row["voices"])
            final = self.takes_dir / f"{take_id}.flac"
            try:
                if final.exists():  # crashed between the rename and the commit
                    audio, _ = sf.read(str(final), dtype="float32", always_2d=True)
                    self._mark_done(take_id, audio, {}, recovered=True)
                    self._drop_partial(take_id)
                    self.recovered.append(take_id)
                    continue
                if self._complete(take_id, voices, {}, recovered=True) is not None:
                    self.recovered.append(take_id)
                else:
                    self.removed.append(take_id)
            except (LibraryError, OSError, RuntimeError, sf.LibsndfileError):
                final.unlink(missing_ok=True)
                self._drop_partial(take_id)
                self.removed.append(take_id)
        # every take is finished now, so whatever is left in .partial/ is debris (a raw file
        # whose take was committed just before the crash, a half-encoded FLAC), and takes/
        # holds exactly one FLAC per row
        known = {f"{r['id']}.flac" for r in self._query("SELECT id FROM takes")}
        for folder in (self.partial_dir, self.takes_dir):
            for path in folder.iterdir():
                if path.is_file() and (folder == self.partial_dir or path.name not in known):
                    path.unlink(missing_ok=True)

    def check(self) -> list[str]:
        """Integrity problems, one sentence each ([] when sound): a row left 'recording', a
        take whose FLAC does not decode to its recorded frames and voices, a file in takes/,
        .partial/ or .trash/ that belongs to no row. Call it when no take is being recorded
        (right after opening, say). It decodes every take, so it is slow on a big library."""
        problems, expected = [], set()
        for row in self._query("SELECT id, state, deleted, frames, voices FROM takes"):
            if row["state"] != "done":
                problems.append(f"take {row['id']} is still marked as being recorded")
                expected.add(self.partial_dir / f"{row['id']}.f32")  # reported with its row
                continue
            path = (self.trash_dir if row["deleted"] else self.takes_dir) / f"{row['id']}.flac"
            expected.add(path)
            try:
                shape = sf.read(str(path), dtype="float32", always_2d=True)[0].shape
            except (OSError, RuntimeError, sf.LibsndfileError) as error:
                problems.append(f"take {row['id']}: cannot read {path}: {error}")
                continue
            if shape != (row["frames"], row["voices"]):
                problems.append(
                    f"take {row['id']}: {path} holds {shape[0]} frames x {shape[1]} voices, "
                    f"the library says {row['frames']} x {row['voices']}"
                )
        for folder in (self.takes_dir, self.partial_dir, self.trash_dir):
            problems += [
                f"{path} belongs to no take" for path in folder.iterdir() if path.is_file() and path not in expected
            ]
        return problems

    # ---- queries -------------------------------------------------------------------

    def _take(self, row: sqlite3.Row) -> Take:
        thumb = (
            np.frombuffer(row["thumbnail"], np.float32).reshape(2, -1)
            if row["thumbnail"]
            else np.zeros((2, 1), np.float32)
        )
        folder = self.trash_dir if row["deleted"] else self.takes_dir
        return Take(
            id=row["id"],
            name=row["name"],
            created=row["created"],
            frames=row["frames"],
            voices=row["voices"],
            checkpoint=row["checkpoint"],
            checkpoint_path=row["checkpoint_path"],
            temperature=row["temperature"],
            top_p=row["top_p"],
            random_seed=row[_COLUMN_OF["random_seed"]],
            seed_audio=row["seed_audio"],
            seed_frames=row["seed_frames"],
            starred=bool(row["starred"]),
            recovered=bool(row["recovered"]),
            extra=json.loads(row["extra"] or "{}"),
            thumbnail=thumb,
            path=folder / f"{row['id']}.flac",
            effects=row["effects"],
        )

    def get(self, take_id: str) -> Take:
        rows = self._query("SELECT * FROM takes WHERE id = ?", (take_id,))
        if not rows:
            raise LibraryError(f"no take {take_id!r} in the library")
        return self._take(rows[0])

    _ORDER = {
        "created": "created",
        "name": "name COLLATE NOCASE",
        "duration": "frames",
        "checkpoint": "checkpoint",
        "starred": "starred",
    }

    def takes(
        self,
        *,
        text: str = "",
        checkpoint: str | None = None,
        starred: bool | None = None,
        since: str | None = None,
        until: str | None = None,
        order: str = "created",
        descending: bool = True,
    ) -> list[Take]:
        """Finished, not deleted takes, filtered and sorted.

        text: case-insensitive substring of the name; checkpoint: exact checkpoint name;
        starred: only starred (True) or unstarred (False); since/until: ISO dates or
        datetimes (inclusive bounds on `created`); order: created|name|duration|checkpoint|starred.
        """
        where: list[str] = ["state = 'done'", "deleted = 0"]
        args: list[str | int] = []
        if text:
            where.append("name LIKE ? ESCAPE '\\'")
            args.append("%" + re.sub(r"([\\%_])", r"\\\1", text) + "%")
        if checkpoint is not None:
            where.append("checkpoint = ?")
            args.append(checkpoint)
        if starred is not None:
            where.append("starred = ?")
            args.append(int(starred))
        if since:
            where.append("created >= ?")
            args.append(since)
        if until:
            where.append("created <= ?")
            args.append(until if "T" in until else until + "T99")
        if order not in self._ORDER:
            raise ValueError(f"order must be one of {sorted(self._ORDER)}")
        direction = "DESC" if descending else "ASC"
        sql = f"SELECT * FROM takes WHERE {' AND '.join(where)} ORDER BY {self._ORDER[order]} {direction}, id"
        return [self._take(r) for r in self._query(sql, args)]

    def checkpoints(self) -> list[str]:
        """Names of the checkpoints that made the listed takes."""
        rows = self._query("SELECT DISTINCT checkpoint FROM takes WHERE state='done' AND deleted=0 ORDER BY 1")
        return [r[0] for r in rows]

    # ---- edits ---------------------------------------------------------------------

    def rename(self, take_id: str, name: str) -> None:
        name = name.strip()
        if not name:
            raise LibraryError("a take needs a name")
        self._update(take_id, name=name)

    def set_effects(self, take_id: str, effects: str) -> None:
        """Stores another effects chain (ChainSpec JSON; '' for none) with a take: its
        processed audio is re-rendered from its dry audio through this chain."""
        self._update(take_id, effects=effects)

    def set_starred(self, take_id: str, starred: bool = True) -> None:
        self._update(take_id, starred=int(bool(starred)))

    def _update(self, take_id: str, **values) -> None:
        with self._tx() as db:
            for key, value in values.items():
                cursor = db.execute(f"UPDATE takes SET {key} = ? WHERE id = ?", (value, take_id))
                if cursor.rowcount == 0:
                    raise LibraryError(f"no take {take_id!r} in the library")

    def delete(self, take_ids: Iterable[str]) -> list[str]:
        """Soft-deletes: moves the files to the trash; `undelete` brings them back until
        the trash is purged (at close or the next open). Returns the ids deleted."""
        done = []
        for take_id in take_ids:
            with self._tx() as db:
                cursor = db.execute("UPDATE takes SET deleted = 1 WHERE id = ? AND deleted = 0", (take_id,))
            if cursor.rowcount:
                # moved after the commit: killed in between, the next open purges the row and
                # its file (a file moved first would be purged from the trash under a live row)
                src = self.takes_dir / f"{take_id}.flac"
                if src.exists():
                    os.replace(src, self.trash_dir / src.name)
                done.append(take_id)
        return done

    def undelete(self, take_ids: Iterable[str]) -> None:
        for take_id in take_ids:
            with self._tx() as db:
                src = self.trash_dir / f"{take_id}.flac"
                if not src.exists():
                    raise LibraryError("this take was already removed for good; it cannot be restored")
                db.execute("UPDATE takes SET deleted = 0 WHERE id = ?", (take_id,))
                os.replace(src, self.takes_dir / src.name)

    def purge_trash(self) -> None:
        """Removes soft-deleted takes for good."""
        with self._tx() as db:
            for row in db.execute("SELECT id FROM takes WHERE deleted = 1").fetchall():
                (self.trash_dir / f"{row['id']}.flac").unlink(missing_ok=True)
            db.execute("DELETE FROM takes WHERE deleted = 1")
        for path in self.trash_dir.iterdir():
            if path.is_file():
                path.unlink(missing_ok=True)

    # ---- export --------------------------------------------------------------------

    def export(
        self,
        take_ids: Sequence[str],
        folder: str | Path,
        fmt: str = "wav",
        rate: int = RATE,
        *,
        mono: bool = False,
        audio: ExportAudio = ExportAudio.DRY,
        chains: dict | None = None,
        progress: Callable[[int, int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[Path]:
        """Writes each take's dry or processed audio to `folder` as NAME.FMT (made unique),
        resampled to `rate`. Returns the files written. A failed file is removed before
        the error is raised. chains: prebuilt effects chains by take id (see
        `Take.processed`)."""
        fmt = fmt.lower()
        if fmt not in EXPORT_FORMATS:
            raise LibraryError(f"unknown export format {fmt!r}; choose wav, flac or ogg")
        if rate not in EXPORT_RATES:
            raise LibraryError(f"unsupported export rate {rate}; choose one of {EXPORT_RATES}")
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _io_error(f"create the export folder {folder}", error) from error
        written = []
        for index, take_id in enumerate(take_ids):
            if cancelled is not None and cancelled():
                break
            take = self.get(take_id)
            if audio is ExportAudio.PROCESSED:
                samples = take.processed(chain=(chains or {}).get(take_id))[:, None]
            else:
                samples = take.read()
            if mono and samples.shape[1] > 1:
                samples = samples.mean(axis=1, keepdims=True)
            if rate != RATE:
                samples = soxr.resample(samples, RATE, rate, quality="HQ").astype(np.float32)
            samples = np.clip(samples, -1.0, 1.0)  # a chain may go over full scale
            target = _unique(folder / f"{_safe_name(take.name)}.{fmt}")
            major, subtype = EXPORT_FORMATS[fmt]
            try:
                sf.write(str(target), samples, rate, format=major, subtype=subtype)
            except (OSError, RuntimeError, sf.LibsndfileError) as error:
                target.unlink(missing_ok=True)
                raise _io_error(f"export {take.name!r} to {target}", error) from error
            written.append(target)
            if progress is not None:
                progress(index + 1, len(take_ids))
        return written


class _Transaction:
    def __init__(self, db: sqlite3.Connection | None, lock: threading.RLock):
        self.db, self.lock = db, lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        if self.db is None:
            self.lock.release()
            raise LibraryError("the library is closed")
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        assert self.db is not None  # __enter__ refused a closed library
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()


def _migrate(db: sqlite3.Connection) -> None:
    """Adds the columns that a library made by an older version lacks."""
    have = {row["name"] for row in db.execute("PRAGMA table_info(takes)")}
    for column, definition in _ADDED_COLUMNS.items():
        if column not in have:
            db.execute(f"ALTER TABLE takes ADD COLUMN {column} {definition}")


def _safe_name(name: str) -> str:
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', "_", name).strip(" .")
    return cleaned[:120] or "take"


def _unique(path: Path) -> Path:
    if not path.exists():
        return path
    for n in range(2, 10000):
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
        if not candidate.exists():
            return candidate
    raise LibraryError(f"too many files named like {path}")
