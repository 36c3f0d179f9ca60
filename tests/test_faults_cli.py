"""Faults and bad input at the command line (issue 11): every case ends in one line, the
right exit code, no traceback on stderr and no partial output file.

The CLI runs as a child process (`engine.cli.SELF_COMMAND`) on real files, a real full
disk and a real read-only file system (small tmpfs mounts: tests run as root in CI).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import child_env, error_line, run_harmonic

from engine.audio_file import read_audio
from engine.checkpoint import DEFAULT_CHECKPOINT, CheckpointError, load_model, quiet_closed_loop_reports
from engine.cli import SELF_COMMAND
from engine.errors import log_unexpected


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    """CPU JAX, and a compile cache, log folder and user cache for this module's children."""
    return child_env(tmp_path_factory.mktemp("faults"))


def generate(env: dict, out: Path, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    return run_harmonic(env, "generate", "--preset", "tiny", "--seed", "1", "--out", out, *args, timeout=timeout)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def write_seed(path: Path, seconds: float, rate: int, channels: int = 1, subtype: str = "PCM_16") -> Path:
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.4 * np.sin(2 * np.pi * 330 * t)
    soundfile.write(path, np.repeat(tone[:, None], channels, axis=1), rate, subtype=subtype)
    return path


def bad_seeds(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (seed path, the words its message must hold)."""
    seeds = {}
    (folder / "empty.wav").write_bytes(b"")
    seeds["empty"] = (folder / "empty.wav", "is empty")
    soundfile.write(folder / "no-frames.wav", np.zeros(0, np.float32), 16000)
    seeds["no frames"] = (folder / "no-frames.wav", "is empty")
    soundfile.write(folder / "one at 44k.wav", np.full(1, 0.5, np.float32), 44100)
    seeds["one sample at 44.1 kHz"] = (folder / "one at 44k.wav", "too short")
    whole = write_seed(folder / "whole.wav", 1.0, 16000).read_bytes()
    (folder / "truncated.wav").write_bytes(whole[:30])  # cut inside the header
    seeds["truncated header"] = (folder / "truncated.wav", "not an audio file libsndfile reads")
    (folder / "text.wav").write_text("this is not audio\n")
    seeds["wrong container"] = (folder / "text.wav", "not an audio file libsndfile reads")
    for name, value in (("nan", np.nan), ("inf", np.inf)):
        audio = np.full(1600, 0.1, np.float32)
        audio[100] = value
        soundfile.write(folder / f"{name}.wav", audio, 16000, subtype="FLOAT")
        seeds[name] = (folder / f"{name}.wav", "NaN or infinite")
    (folder / "a folder.wav").mkdir()
    seeds["folder"] = (folder / "a folder.wav", "is a folder")
    seeds["missing"] = (folder / "missing.wav", "not found")
    return seeds


def test_bad_seed_files_give_one_line(env, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name, (seed, words) in bad_seeds(tmp_path).items():
        proc = generate(env, out / "take.wav", "--seconds", "0.1", "--prime", seed)
        assert proc.returncode == 2, (name, proc.stderr[-2000:])
        line = error_line(proc)
        assert words in line and str(seed) in line, (name, line)
        assert leftovers(out) == [], name


def test_bad_files_in_a_data_folder_are_skipped_with_their_reason(env, tmp_path):
    """The data builder meets the same bad files: each is skipped and listed with the
    reader's reason, the good one is built, and nothing ends in a traceback."""
    src = tmp_path / "audio"
    src.mkdir()
    bad = {seed.name: words for seed, words in bad_seeds(src).values() if seed.is_file()}
    write_seed(src / "good.wav", 2.0, 22050)
    out = tmp_path / "set"
    command = [*SELF_COMMAND, "data", "build", "folder", "--src", str(src), "--out", str(out), "--clip-seconds", "1"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    skipped = {
        line.removeprefix("  skipped ").split(": ")[0]: line
        for line in proc.stdout.splitlines()
        if line.startswith("  skipped ")
    }
    assert set(skipped) == set(bad), proc.stdout
    assert all(words in skipped[name] or "shorter than" in skipped[name] for name, words in bad.items()), skipped


def test_odd_but_valid_seeds_prime(env, tmp_path):
    seeds = [
        write_seed(tmp_path / "one sample.wav", 1 / 16000, 16000),
        write_seed(tmp_path / "eight channels.wav", 0.2, 16000, channels=8),
        write_seed(tmp_path / "192k.wav", 0.2, 192000, subtype="PCM_24"),
        write_seed(tmp_path / "8bit.wav", 0.2, 22050, subtype="PCM_U8"),
        write_seed(tmp_path / "sëed ünïcode 音.flac", 0.2, 44100),
    ]
    for seed in seeds:
        out = tmp_path / f"{seed.stem} out.wav"
        proc = generate(env, out, "--seconds", "0.05", "--chunk-ms", "10", "--prime", seed, "--with-prime")
        assert proc.returncode == 0, (seed.name, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr
        primed = len(read_audio(seed))
        assert soundfile.info(out).frames == primed + 800, seed.name


def test_long_seed_primes_in_chunks_with_progress(env, tmp_path):
    # 20 s: 79 chunks of the one prefill program; 8-bit at 8 kHz keeps the file small.
    seed = write_seed(tmp_path / "long.wav", 20.0, 8000, subtype="PCM_U8")
    proc = generate(env, tmp_path / "take.wav", "--seconds", "0.05", "--prime", seed)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = {
        int(line.split()[1].rstrip("%"))
        for line in proc.stderr.replace("\r", "\n").splitlines()
        if line.startswith("priming ")
    }
    assert 100 in shown and len(shown) > 3
    assert "primed with 20.00 s" in proc.stdout


def test_hour_long_file_reads_in_bounded_memory(tmp_path):
    # An hour at 2 kHz, 8 bits: a 7 MB file whose 16 kHz mono is 57.6 million samples.
    seed = write_seed(tmp_path / "hour.wav", 3600.0, 2000, subtype="PCM_U8")
    audio = read_audio(seed)
    assert audio.dtype == np.float32 and abs(len(audio) - 3600 * 16000) <= 16


def test_out_and_seconds_are_checked_first(env, tmp_path):
    cases = [
        (tmp_path / "no such folder" / "take.wav", "no such folder"),
        (tmp_path / "a folder.wav", "is a folder"),
        (tmp_path / "take.mp3", ".wav or .flac"),
    ]
    (tmp_path / "a folder.wav").mkdir()
    for out, words in cases:
        proc = generate(env, out, "--seconds", "0.1")
        assert proc.returncode == 2 and words in error_line(proc), proc.stderr[-2000:]
    for seconds in ("nan", "inf", "0"):
        proc = generate(env, tmp_path / "take.wav", "--seconds", seconds)
        assert proc.returncode == 2 and "--seconds must be a number > 0" in error_line(proc)
    assert leftovers(tmp_path) == ["a folder.wav"]


def interrupt(env: dict, folder: Path, written: int, *options: str) -> tuple[Path, str]:
    """Runs a long take into `folder` (with `options`), sends SIGINT once its partial file
    holds more than `written` bytes (0: as soon as it exists, before the model has loaded);
    returns the output path and the one line the command ended with (after checking exit
    code 130)."""
    out = folder / "take.wav"
    command = [*SELF_COMMAND, "generate", "--preset", "tiny", "--seconds", "600", "--out", str(out), *options]
    with open(folder / "stderr", "w+") as stderr:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
        deadline = time.monotonic() + 180
        while not any(p.suffix == ".part" and p.stat().st_size >= written for p in folder.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline, "the take did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
        stderr.seek(0)
        return out, error_line(subprocess.CompletedProcess(command, 130, "", stderr.read()))


def test_ctrl_c_before_any_audio_leaves_nothing(env, tmp_path):
    _, line = interrupt(env, tmp_path, 0)
    assert line.endswith("stopped") or "stopped before any audio" in line
    assert leftovers(tmp_path) == ["stderr"]


@pytest.mark.parametrize("options", [(), ("--watchdog",)], ids=["plain", "watchdog"])
def test_ctrl_c_keeps_the_take(env, tmp_path, options):
    out, line = interrupt(env, tmp_path, 16384, *options)
    assert "stopped; kept" in line
    audio, rate = soundfile.read(out, dtype="float32")
    assert rate == 16000 and len(audio) > 0
    assert f"kept {len(audio) / 16000:.2f} s" in line
    assert leftovers(tmp_path) == ["stderr", "take.wav"]


def test_full_disk_leaves_no_file(tmp_path, env, tmpfs):
    disk = tmpfs(tmp_path / "disk", "size=200k")
    older = write_seed(disk / "older.wav", 0.1, 16000).read_bytes()
    # 4 s of 32-bit float is 256 kB: the disk fills while the take is being written. An
    # older take of the same name stays as it was.
    for name in ("older.wav", "take.flac"):
        proc = generate(env, disk / name, "--seconds", "8" if name.endswith("flac") else "4")
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "the disk is full" in error_line(proc)
        assert leftovers(disk) == ["older.wav"] and (disk / "older.wav").read_bytes() == older


def test_read_only_folder(tmp_path, env, tmpfs):
    disk = tmpfs(tmp_path / "ro", "size=1m,ro")
    proc = generate(env, disk / "take.wav", "--seconds", "0.1")
    assert proc.returncode == 2 and "cannot write there" in error_line(proc)
    assert leftovers(disk) == []


def test_damaged_checkpoint_gives_one_line(env, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(DEFAULT_CHECKPOINT, damaged)
    # Garbage in the middle of the largest weights file: some reads fail while others are
    # still in flight (this made tensorstore print "Event loop is closed" tracebacks).
    largest = max((p for p in (damaged / "params").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    with largest.open("r+b") as file:
        file.seek(largest.stat().st_size // 8)
        file.write(np.random.default_rng(0).bytes(100_000))
    out = tmp_path / "t.wav"
    command = [*SELF_COMMAND, "generate", "--checkpoint", str(damaged), "--seconds", "0.1", "--out", str(out)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "damaged" in error_line(proc) and "Event loop is closed" not in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".*.part"))


def test_unexpected_errors_go_to_the_log(monkeypatch, tmp_path):
    monkeypatch.setenv("HARMONIC_LOG_DIR", str(tmp_path))
    try:
        {}["missing"]
    except KeyError as error:
        line = log_unexpected(error, "harmonic test")
    assert "\n" not in line and str(tmp_path / "errors.log") in line and "KeyError" in line
    logged = (tmp_path / "errors.log").read_text()
    assert "Traceback" in logged and "harmonic test" in logged


def test_late_closed_loop_callbacks_are_dropped_and_others_kept(monkeypatch, capsys):
    """The damaged-checkpoint case above is a race (a callback can land at any moment of
    the failed restore); this checks the reports themselves, through both hooks."""
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    quiet_closed_loop_reports()
    loop = asyncio.new_event_loop()
    loop.close()
    try:
        loop.call_soon_threadsafe(print)
    except RuntimeError as error:
        closed = error
    other = RuntimeError("something else")

    class RaisesWhenCollected:
        def __init__(self, error):
            self.error = error

        def __del__(self):
            raise self.error

    for error in (closed, other):
        sys.excepthook(type(error), error, error.__traceback__)
        RaisesWhenCollected(error)  # reported through sys.unraisablehook, as the callbacks are
    printed = capsys.readouterr().err
    assert "Event loop is closed" not in printed and printed.count("something else") == 2


def test_other_failed_reads_of_a_damaged_checkpoint_are_not_reported(tmp_path, caplog):
    """The other half of that race: orbax's other reads of the damaged file fail in tasks
    nobody awaits, and asyncio reports each, with a traceback, when it is collected. Every
    failed load drops its own folder's reports through one filter, however many fail."""
    asyncio_filters = len(logging.getLogger("asyncio").filters)
    for name in ("damaged", "damaged-too"):
        damaged = tmp_path / name
        shutil.copytree(DEFAULT_CHECKPOINT, damaged)
        for weights in (p for p in (damaged / "params").rglob("*") if p.is_file() and p.stat().st_size > 4096):
            weights.write_bytes(np.random.default_rng(0).bytes(weights.stat().st_size))
        with pytest.raises(CheckpointError, match="damaged"):
            load_model(damaged)
    assert len(logging.getLogger("asyncio").filters) <= max(asyncio_filters, 1)

    async def read(folder: Path):
        raise ValueError(f'Error reading "kernel" in OCDBT database at local file "{folder}/params/"')

    def fail_unawaited(folder: Path) -> None:
        loop = asyncio.new_event_loop()
        task = loop.create_task(read(folder))
        loop.run_until_complete(asyncio.sleep(0.01))
        loop.close()
        del task
        gc.collect()

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        fail_unawaited((tmp_path / "damaged").resolve())
        fail_unawaited(damaged.resolve())
        fail_unawaited(tmp_path / "elsewhere")
    reports = [r for r in caplog.records if r.getMessage().startswith("Task exception was never retrieved")]
    assert len(reports) == 1 and "elsewhere" in str(reports[0].exc_info[1])
