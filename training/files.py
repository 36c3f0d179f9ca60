"""Files that training writes: whole or not at all, and a full disk told apart.

Every file is written under a temporary name in its own folder and renamed into place
(a rename within one file system is atomic), so a kill or a full disk at any instant
leaves the old file or the new one, never a truncated one under the real name.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from engine.errors import is_disk_full


def temporary_name(path: Path) -> Path:
    """A hidden name next to `path` that keeps its suffix (matplotlib picks the format
    from it) and the process id (two writers never share one)."""
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


@contextlib.contextmanager
def replacing(*paths: Path) -> Iterator[list[Path]]:
    """Yields temporary names for `paths`; when the block ends, they are renamed onto
    `paths` together, or removed if the block raised."""
    temporaries = [temporary_name(Path(p)) for p in paths]
    try:
        yield temporaries
        for temporary, path in zip(temporaries, paths, strict=True):
            os.replace(temporary, path)
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    with replacing(path) as (temporary,):
        temporary.write_text(text)


def free_bytes(folder: Path) -> int:
    """Free space on the disk that holds (or will hold) `folder`."""
    existing = next(p for p in (Path(folder).absolute(), *Path(folder).absolute().parents) if p.exists())
    return shutil.disk_usage(existing).free


def require_space(folder: Path, needed: int) -> None:
    """Raises ENOSPC before a write of about `needed` bytes that cannot fit: for writers
    that report a disk filling up under them badly (orbax's Checkpointer prints "Event
    loop is closed" tracebacks from its pending writes after it has raised)."""
    if free_bytes(folder) < needed:
        raise OSError(errno.ENOSPC, f"No space left on device: about {needed / 1e6:.1f} MB needed", str(folder))


def disk_full_message(folder: Path, advice: str) -> str:
    """One line: which disk is full, how much is left on it, and what to do."""
    return f"the disk holding {folder} is full ({free_bytes(folder) / 1e6:.1f} MB free): {advice}"


class DropFullDiskRecords(logging.Filter):
    """Drops log records about a full disk. A library that writes from several tasks
    (orbax: asyncio tasks and threads) logs each task's failure with its traceback, the
    same ENOSPC hundreds of times, while the error it raises reaches the user as one
    line (`training.cli.full_disk_is_user_error` installs this); other records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (is_disk_full(error) or "no space left on device" in record.getMessage().lower())


def quiet_full_disk_logs(*loggers: str) -> None:
    """Installs `DropFullDiskRecords` on the named loggers (once each)."""
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropFullDiskRecords) for f in logger.filters):
            logger.addFilter(DropFullDiskRecords())
