"""An audio file written while it is generated, that appears at its path only complete.

    with TakeFile("take.wav") as take:    # checks the destination; UserError if unusable
        take.write(chunk)                 # float32 [voices, n], as often as needed
        take.finish()                     # renames it into place
    # leaving the block without finish() (an error, Ctrl-C) removes the partial file

The audio goes to a hidden temporary file in the destination's folder (so the final
rename is atomic on one file system) and is closed and renamed by `finish`. A failed
write (a full disk) or close removes it and raises a one-line `UserError`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import soundfile

from engine.errors import UserError, is_disk_full
from engine.mulaw import SAMPLE_RATE

FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24")}
# Below this much free space a failed write is reported as a full disk (libsndfile's
# error for ENOSPC is a bare "system error").
FULL_DISK_BYTES = 1 << 20


def output_format(path: str | Path) -> tuple[str, str]:
    """(format, subtype) for soundfile from the file's extension; UserError if unknown."""
    known = FORMATS.get(Path(path).suffix.lower())
    if known is None:
        raise UserError(f"{path}: the output must end in .wav or .flac")
    return known


class TakeFile:
    """An output audio file written chunk by chunk, atomically.

    Args:
      path: the destination (.wav: 32-bit float; .flac: 24-bit). Its folder must exist
        and be writable: checked here by creating the temporary file.

    Attributes:
      path: the destination.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self._format, self._subtype = output_format(self.path)
        folder = self.path.parent
        if self.path.is_dir():
            raise UserError(f"{self.path}: is a folder; give a file name ending in .wav or .flac")
        if not folder.is_dir():
            raise UserError(f"{folder}: no such folder; create it or choose another --out")
        self._partial = folder / f".{self.path.name}.{os.getpid()}.part"
        try:
            self._partial.open("xb").close()
        except OSError as error:
            raise UserError(f"{folder}: cannot write there ({error.strerror}); choose another folder") from None
        self._file: soundfile.SoundFile | None = None

    def __enter__(self) -> TakeFile:
        return self

    def __exit__(self, *exc) -> None:
        if self._partial.exists():
            self._discard()

    @property
    def frames(self) -> int:
        """Samples per channel written so far."""
        return 0 if self._file is None else self._file.frames

    @property
    def seconds(self) -> float:
        return self.frames / SAMPLE_RATE

    def write(self, audio: np.ndarray) -> None:
        """Appends float32 [voices, n] (clipped to [-1, 1]); voices is fixed by the first call."""
        try:
            if self._file is None:
                self._file = soundfile.SoundFile(
                    self._partial, "w", SAMPLE_RATE, audio.shape[0], self._subtype, format=self._format
                )
            self._file.write(np.clip(audio.T, -1, 1))
        except (RuntimeError, OSError) as error:  # soundfile.LibsndfileError is a RuntimeError
            self._fail("write", error)

    def finish(self) -> None:
        """Completes the file (after at least one `write`) and renames it into place, over
        an older file of that name."""
        try:
            if self._file is not None:
                self._file.close()
            # On disk before the rename, so that a crash cannot leave an empty file in place.
            descriptor = os.open(self._partial, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.replace(self._partial, self.path)
        except (RuntimeError, OSError) as error:
            self._fail("finish", error)

    def _discard(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except (RuntimeError, OSError):
                pass  # the file is being removed: a failing close changes nothing
        self._partial.unlink(missing_ok=True)

    def _fail(self, action: str, error: Exception) -> None:
        """Removes the partial file and raises the one-line reason."""
        # Free space is measured before the partial file's removal frees some.
        if is_disk_full(error) or shutil.disk_usage(self.path.parent).free < FULL_DISK_BYTES:
            reason = "the disk is full; free space or choose another folder"
        else:
            said = getattr(error, "error_string", "") or getattr(error, "strerror", "") or str(error)
            reason = f"{said or type(error).__name__}; no file was left"
        self._discard()
        raise UserError(f"cannot {action} {self.path}: {reason}") from None
