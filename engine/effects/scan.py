"""Finding VST3 and LV2 plugins: the catalog of what can go in a chain.

    catalog = load_catalog()              # cached; load_catalog(rescan=True) scans again
    catalog.plugins                       # built-ins first, then every plugin that loaded
    catalog.failures                      # ScanFailure(path_or_uri, format, reason)

Bundles are found in the standard folders (`vst3.vst3_folders()`, `lv2.lv2_folders()`,
both honour VST3_PATH / LV2_PATH) and loaded in a child process (`engine.effects.probe`),
several to a child: a bundle that crashes or hangs it is listed as a failure with the
signal or the time it took, and a fresh child carries on with the rest. Results are
cached in the user cache folder, keyed by each bundle's path and newest modification
time, so only new or changed bundles are loaded again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import platformdirs

from engine.effects import lv2, vst3
from engine.effects.builtin import builtin_plugins
from engine.effects.spec import PluginFormat, PluginInfo

CACHE_VERSION = 4  # 4: has_editor is set (LV2 plugins with an X11 UI, VST3 plugins)
# A bundle that takes longer than this to load and run one block is reported as hung.
PROBE_SECONDS = 30.0
POLL_SECONDS = 0.05


@dataclasses.dataclass(frozen=True)
class ScanFailure:
    """A bundle that could not be loaded, and why (one line)."""

    path_or_uri: str
    format: PluginFormat
    reason: str


@dataclasses.dataclass
class Catalog:
    plugins: list[PluginInfo]
    failures: list[ScanFailure]


@dataclasses.dataclass(frozen=True)
class _Bundle:
    format: PluginFormat
    path: str
    key: str  # path and newest modification time: a changed bundle is scanned again


@dataclasses.dataclass
class _Result:
    """What a probe said of one bundle: the plugins that work, and (path or URI, reason)
    for each that does not (the bundle's path when the whole bundle failed)."""

    plugins: list[PluginInfo]
    failures: list[tuple[str, str]]

    def to_dict(self) -> dict:
        return {"plugins": [p.to_dict() for p in self.plugins], "failures": self.failures}

    @classmethod
    def from_dict(cls, data: dict) -> _Result:
        return cls([PluginInfo.from_dict(p) for p in data["plugins"]], [tuple(f) for f in data["failures"]])


def cache_path() -> Path:
    return Path(platformdirs.user_cache_dir("harmonic")) / "plugins.json"


def load_catalog(rescan: bool = False) -> Catalog:
    """Built-ins plus every VST3/LV2 plugin found; bundles not in the cache (all of them
    with `rescan`) are loaded in child processes first."""
    bundles = find_bundles()
    cached = {} if rescan else _read_cache()
    results = {b.key: cached[b.key] for b in bundles if b.key in cached}
    results.update(probe_bundles([b for b in bundles if b.key not in results]))
    _write_cache(results)
    plugins, failures = list(builtin_plugins()), []
    for bundle in bundles:
        result = results[bundle.key]
        plugins += result.plugins
        failures += [ScanFailure(where, bundle.format, reason) for where, reason in result.failures]
    return Catalog(plugins, failures)


def find_bundles() -> list[_Bundle]:
    """Every VST3 and LV2 bundle in the standard folders, each once."""
    found: dict[Path, _Bundle] = {}
    for plugin_format, folders, suffix in (
        (PluginFormat.VST3, vst3.vst3_folders(), ".vst3"),
        (PluginFormat.LV2, lv2.lv2_folders(), ".lv2"),
    ):
        for folder in folders:
            for path in _bundles_in(folder, suffix):
                found.setdefault(path.resolve(), _Bundle(plugin_format, str(path), f"{path}@{_newest_mtime(path)}"))
    return list(found.values())


def probe_bundles(bundles: list[_Bundle]) -> dict[str, _Result]:
    """Loads `bundles` in child processes; a result (plugins or failure) for each key."""
    results: dict[str, _Result] = {}
    while bundles:
        answered, stopped_at = _probe_in_child(bundles)
        results.update(answered)
        remaining = [b for b in bundles if b.key not in results]
        if stopped_at is not None:
            results[remaining[0].key] = _Result([], [(remaining[0].path, stopped_at)])  # the one it was loading
            remaining = remaining[1:]
        bundles = remaining
    return results


def _probe_in_child(bundles: list[_Bundle]) -> tuple[dict[str, _Result], str | None]:
    """Runs one probe child over `bundles` in order until it ends or dies.

    Returns:
      the results it gave, and, if it died or hung, the reason for the first bundle
      without a result (the one it was loading).
    """
    with tempfile.TemporaryDirectory(prefix="harmonic-scan-") as folder:
        answers, errors = Path(folder) / "answers", Path(folder) / "stderr"
        answers.touch()
        jobs = "".join(f"{b.format}\t{b.path}\n" for b in bundles)
        with errors.open("wb") as stderr:
            child = subprocess.Popen(
                [sys.executable, "-m", "engine.effects.probe", str(answers)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            assert child.stdin is not None  # stdin=PIPE opens it
            child.stdin.write(jobs.encode())
            child.stdin.close()
            hung = _wait_while_answering(child, answers)
        lines = answers.read_text(errors="replace").splitlines()
        said = [line for line in errors.read_text(errors="replace").splitlines() if line.strip()]
        last_error = said[-1] if said else ""
    by_path = {b.path: b for b in bundles}
    results, started = {}, None
    for line in lines:
        kind, path, *rest = line.split("\t", 2)
        if kind == "start":
            started = path
            continue
        started = None
        results[by_path[path].key] = (
            _Result.from_dict(json.loads(rest[0])) if kind == "ok" else _Result([], [(path, rest[0])])
        )
    if child.returncode == 0 and len(results) == len(bundles):
        return results, None
    if hung:
        return results, f"did not finish loading within {PROBE_SECONDS:g} s (stopped)"
    if child.returncode < 0:
        return results, f"crashed the scanner ({signal.Signals(-child.returncode).name})"
    if started is None:  # the child itself failed between bundles: the rest would fail alike
        reason = f"the scanner failed (exit {child.returncode}: {last_error})"
        return {**results, **{b.key: _Result([], [(b.path, reason)]) for b in bundles if b.key not in results}}, None
    return results, f"crashed the scanner (exit {child.returncode}: {last_error})"


def _wait_while_answering(child: subprocess.Popen, answers: Path) -> bool:
    """Waits for `child`; kills it if its answers file stops growing for PROBE_SECONDS.
    Returns True when it was killed for hanging."""
    size, progress = 0, time.monotonic()
    while child.poll() is None:
        time.sleep(POLL_SECONDS)
        now_size = answers.stat().st_size
        if now_size != size:
            size, progress = now_size, time.monotonic()
        elif time.monotonic() - progress > PROBE_SECONDS:
            child.kill()
            child.wait()
            return True
    return False


def _bundles_in(folder: Path, suffix: str) -> list[Path]:
    """Bundle folders named *suffix under `folder` (vendor subfolders too), not inside bundles."""
    found = []
    for root, dirs, _ in os.walk(folder):
        for name in sorted(dirs):
            if name.endswith(suffix):
                found.append(Path(root) / name)
        dirs[:] = sorted(d for d in dirs if not d.endswith(suffix))
    return found


def _newest_mtime(bundle: Path) -> int:
    newest = bundle.stat().st_mtime_ns
    for root, _, files in os.walk(bundle):
        for name in files:
            try:
                newest = max(newest, (Path(root) / name).stat().st_mtime_ns)
            except OSError:
                continue  # a dangling link: the probe reports the bundle's real problem
    return newest


def _read_cache() -> dict[str, _Result]:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
        if data.get("version") != CACHE_VERSION:
            return {}
        return {key: _Result.from_dict(value) for key, value in data["bundles"].items()}
    except (OSError, ValueError, KeyError, TypeError):  # no cache, or an unreadable one: scan again
        return {}


def _write_cache(results: dict[str, _Result]) -> None:
    path = cache_path()
    partial = path.parent / f".{path.name}.{os.getpid()}.part"
    data = {"version": CACHE_VERSION, "bundles": {key: r.to_dict() for key, r in results.items()}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(data), encoding="utf-8")
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)  # a cache that cannot be written only costs a rescan
