"""A private PulseAudio server for the audio tests: two null sinks at 16 kHz mono float,
one the "speaker" (default sink, recorded from its monitor), one the "microphone"
(its monitor is the default source; play a known file into it with `play_into_mic`).

PortAudio reaches it through ALSA's pulse plugin (libasound2-plugins, and pulseaudio's
/etc/alsa/conf.d/99-pulse.conf, which makes ALSA's default device pulse when a server
runs). Run the code under test in a subprocess with `server.env`, so PortAudio
enumerates devices after the server is up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SPEAKER = "harmonic_speaker"
MIC = "harmonic_mic"
FORMAT = "rate=16000 channels=1 format=float32le"


# The start of every app driver script (`PulseServer.run_app_driver`): the window on a
# library, settings file and checkpoint from argv, and `wait`, which runs Qt's event loop
# until a condition holds, recording the transport's states on the way.
APP_DRIVER_PROLOGUE = r"""
import json, os, sys, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
import numpy as np
from PyQt6.QtWidgets import QApplication
app = QApplication([])
from engine.compile_cache import enable_compile_cache
enable_compile_cache()
from app.library import Library
from app.settings import Settings
from app.window import MainWindow

library, settings, checkpoint, out = sys.argv[1:5]
window = MainWindow(library=Library(library), settings=Settings(settings), checkpoint=checkpoint)
window.show()
states = []

def wait(condition, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        app.processEvents()
        if not states or states[-1] != window.transport.state:
            states.append(window.transport.state)
        if condition():
            return
        time.sleep(0.005)
    raise SystemExit(f"timed out waiting for {what}; messages: {window.messages}; states: {states}")
"""


class PulseServer:
    def __init__(self, root: Path):
        self.root = Path(root)
        runtime = self.root / "runtime"
        runtime.mkdir(parents=True, exist_ok=True)
        runtime.chmod(0o700)
        self.env = dict(os.environ)
        self.env.update(
            XDG_RUNTIME_DIR=str(runtime),
            PULSE_RUNTIME_PATH=str(runtime / "pulse"),
            PULSE_SERVER=f"unix:{runtime / 'pulse' / 'native'}",
            HOME=str(self.root / "home"),  # the server's cookie and state stay in tmp
        )
        (self.root / "home").mkdir(exist_ok=True)
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> PulseServer:
        args = [
            "pulseaudio",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "-n",
            "--disallow-exit",
            "--log-target=stderr",
            "--log-level=warning",
            f"--load=module-null-sink sink_name={SPEAKER} {FORMAT}",
            f"--load=module-null-sink sink_name={MIC} {FORMAT}",
            "--load=module-native-protocol-unix auth-anonymous=1",
        ]
        if os.geteuid() == 0:
            args.append("--system=no")
        self.log = open(self.root / "pulseaudio.log", "w")
        self.process = subprocess.Popen(
            args, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pulseaudio exited: {(self.root / 'pulseaudio.log').read_text()[-2000:]}")
            if self.pactl("info", check=False).returncode == 0:
                self.pactl("set-default-sink", SPEAKER)
                self.pactl("set-default-source", f"{MIC}.monitor")
                return self
            time.sleep(0.2)
        raise RuntimeError("pulseaudio did not start in time")

    def pactl(self, *args, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["pactl", *args], env=self.env, capture_output=True, text=True, check=check, stdin=subprocess.DEVNULL
        )

    def record_speaker(self, path: Path) -> subprocess.Popen:
        """Starts recording the speaker's monitor as raw float32 16 kHz mono to `path`;
        terminate() the returned process to stop."""
        out = open(path, "wb")
        return subprocess.Popen(
            [
                "parec",
                f"--device={SPEAKER}.monitor",
                "--format=float32le",
                "--rate=16000",
                "--channels=1",
                "--raw",
                "--latency-msec=10",
            ],
            env=self.env,
            stdout=out,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )

    def play_into_mic(self, wav: Path) -> subprocess.Popen:
        """Plays a file into the microphone sink (heard on the default source)."""
        return subprocess.Popen(
            ["paplay", f"--device={MIC}", str(wav)],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def run_app_driver(
        self,
        driver: str,
        checkpoint: Path,
        tmp_path: Path,
        compile_cache: Path,
        timeout: float,
        mic: Path | None = None,
    ) -> subprocess.CompletedProcess:
        """Runs an app driver script, `APP_DRIVER_PROLOGUE` then `driver` (source text; its
        arguments: library folder, settings file, checkpoint, output folder `tmp_path`), in a
        child process against this server, recording the speaker to tmp_path/speaker.raw meanwhile, and playing `mic`
        into the microphone if given."""
        script = tmp_path / "driver.py"
        script.write_text(APP_DRIVER_PROLOGUE + driver)
        root = Path(__file__).resolve().parent.parent
        env = dict(
            self.env,
            JAX_PLATFORMS="cpu",
            HARMONIC_COMPILE_CACHE=str(compile_cache),
            PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        )
        recorders = [self.record_speaker(tmp_path / "speaker.raw")]
        if mic is not None:
            recorders.append(self.play_into_mic(mic))
        args = [str(script), str(tmp_path / "library"), str(tmp_path / "s.ini"), str(checkpoint), str(tmp_path)]
        try:
            time.sleep(0.5)
            result = subprocess.run(
                [sys.executable, *args],
                env=env,
                cwd=root,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
            time.sleep(0.5)
        finally:
            for process in recorders:
                process.terminate()
                process.wait(10)
        return result

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


def available() -> str | None:
    """None if the tools are installed, else what is missing."""
    missing = [tool for tool in ("pulseaudio", "pactl", "parec", "paplay") if shutil.which(tool) is None]
    return ", ".join(missing) or None


def align(reference: np.ndarray, recorded: np.ndarray) -> tuple[int, float]:
    """(lag, normalised correlation) of `reference` inside `recorded`: recorded[lag:lag+n]
    best matches reference."""
    n = len(reference)
    size = 1 << int(np.ceil(np.log2(len(recorded) + n)))
    corr = np.fft.irfft(np.fft.rfft(recorded, size) * np.conj(np.fft.rfft(reference, size)), size)[
        : len(recorded) - n + 1
    ]
    lag = int(np.argmax(corr))
    window = recorded[lag : lag + n]
    denom = np.linalg.norm(window) * np.linalg.norm(reference)
    return lag, float(np.dot(window, reference) / denom) if denom > 0 else 0.0
