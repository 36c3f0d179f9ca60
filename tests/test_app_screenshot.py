"""Screenshots of the real window under Xvfb (the xcb platform, as on a desktop), taken
while it generates: the window, and its effects panel playing a chain. They stay in the
test's temporary folder; set HARMONIC_SCREENSHOT_OUT=docs/screenshot.png
(HARMONIC_EFFECTS_SCREENSHOT_OUT=docs/screenshot-effects.png) to refresh the README's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from effects_plugins import BUILTIN_REVERB, LV2_REVERB, VST3_REVERB, require_plugins

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(300)


def shipped_or_tiny(tmp_path, preset_params) -> Path:
    from engine.checkpoint import DEFAULT_CHECKPOINT, save_model

    if DEFAULT_CHECKPOINT.is_dir():
        return DEFAULT_CHECKPOINT
    config, params = preset_params("tiny")  # until the shipped model exists: random tiny weights
    checkpoint = tmp_path / "tiny-random"
    save_model(checkpoint, config, params, {"name": "tiny (random weights)", "data": "none: untrained"})
    return checkpoint


def not_blank(path: Path, width: int, height: int) -> None:
    from PyQt6.QtGui import QImage

    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB32)  # kept: its bits are read below
    assert image.width() >= width and image.height() >= height
    # many distinct colours (panels, text, waveform, spectrogram)
    pixels = np.frombuffer(image.constBits().asstring(image.sizeInBytes()), np.uint32)
    assert np.unique(pixels).size > 200


def run_on_screen(xvfb, request, tmp_path_factory, args: list[str], **env: str) -> subprocess.CompletedProcess:
    """Runs `python ARGS` from the repository root on the Xvfb display as on a desktop (the
    xcb platform, JAX on the CPU, the tests' shared compile cache, and the private
    PulseAudio's null sink when there is one) and checks that it succeeds."""
    try:
        base = request.getfixturevalue("pulse_server").env
    except pytest.skip.Exception:
        base = os.environ
    env = dict(
        base,
        DISPLAY=xvfb,
        QT_QPA_PLATFORM="xcb",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=str(ROOT),
        HARMONIC_COMPILE_CACHE=str(tmp_path_factory.getbasetemp() / "app-jaxcache"),
        **env,
    )
    result = subprocess.run([sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def keep_for_docs(screenshot: Path, variable: str) -> None:
    """Copies the screenshot where $`variable` says: the README's pictures are refreshed on purpose only."""
    if os.environ.get(variable):
        shutil.copyfile(screenshot, os.environ[variable])


def test_screenshot_while_generating(xvfb, tmp_path, tmp_path_factory, preset_params, request):
    checkpoint = shipped_or_tiny(tmp_path, preset_params)
    # a library with a few takes, and a seed (a plucked tone) that the take continues
    from app.library import Library

    rate = 16000
    t = np.arange(rate * 2) / rate
    with Library(tmp_path / "library") as library:
        for i, (name, f) in enumerate([("Night piano", 220), ("Pluck study", 330), ("Drone, 3 voices", 110)]):
            tone = np.stack(
                [np.sin(2 * np.pi * f * (v + 1) * t) * np.exp(-t * (1 + i)) * 0.6 for v in range(1 + 2 * (i == 2))]
            )
            take = library.add_take(
                tone.astype(np.float32),
                {
                    "checkpoint": "piano-realtime",
                    "temperature": 1.0 - 0.1 * i,
                    "top_p": 0.95,
                    "random_seed": 100 + i,
                    "name": name,
                },
            )
            if i == 1:
                library.set_starred(take.id)
    seed = tmp_path / "pluck.wav"
    half = t[:rate]
    import soundfile as sf

    sf.write(str(seed), (np.sin(2 * np.pi * 440 * half) * np.exp(-3 * half) * 0.8).astype(np.float32), rate)
    out = tmp_path / "screenshot.png"
    result = run_on_screen(
        xvfb,
        request,
        tmp_path_factory,
        [
            "-m",
            "app.main",
            "--checkpoint",
            str(checkpoint),
            "--settings",
            str(tmp_path / "s.ini"),
            "--seed-audio",
            str(seed),
            "--screenshot",
            str(out),
            "--screenshot-after",
            "5",
        ],
        HARMONIC_LIBRARY=str(tmp_path / "library"),
    )
    assert out.exists(), result.stderr[-3000:]
    not_blank(out, 1000, 700)
    keep_for_docs(out, "HARMONIC_SCREENSHOT_OUT")


EFFECTS_DRIVER = r"""
import json, sys
from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication
app = QApplication(sys.argv[:1])
from app.main import main
from app.window import MainWindow

library, settings, checkpoint, chain, out = sys.argv[1:6]

def shoot():
    window = next((w for w in app.topLevelWidgets() if isinstance(w, MainWindow)), None)
    if window is None or window.transport.state != "playing" or window.sounding_chain() is None:
        QTimer.singleShot(200, shoot)
        return
    QTimer.singleShot(3000, lambda: finish(window))

def finish(window):
    panel = window.effects_panel
    panel.grab().save(out)  # the whole chain, also what the tab's scroll area hides
    slots = [(slot.ref.name, widget.bypass.isChecked()) for slot, widget in zip(panel.spec.slots, panel.slot_widgets)]
    json.dump({"slots": slots,
               "cost": panel.cost_label.text(), "messages": window.messages}, open(out + ".json", "w"))
    window.close()
    app.quit()

QTimer.singleShot(500, shoot)
sys.exit(main(["--checkpoint", checkpoint, "--library", library, "--settings", settings, "--effects", chain,
               "--generate"]))
"""


def test_screenshot_of_the_effects_chain_while_generating(xvfb, tmp_path, tmp_path_factory, preset_params, request):
    require_plugins()
    from engine.effects import ChainSpec, PluginSlot

    checkpoint = shipped_or_tiny(tmp_path, preset_params)
    chain = tmp_path / "chain.json"
    ChainSpec(
        [
            PluginSlot(BUILTIN_REVERB, {"room_size": 0.7, "wet_level": 0.25}),
            PluginSlot(LV2_REVERB, {}, mix=0.6),
            PluginSlot(VST3_REVERB, {"decay_s": 2.5}, bypass=True),
        ]
    ).save(chain)
    driver = tmp_path / "driver.py"
    driver.write_text(EFFECTS_DRIVER)
    out = tmp_path / "screenshot-effects.png"
    run_on_screen(
        xvfb,
        request,
        tmp_path_factory,
        [str(driver), str(tmp_path / "library"), str(tmp_path / "s.ini"), str(checkpoint), str(chain), str(out)],
    )
    import json

    shown = json.loads(Path(str(out) + ".json").read_text())
    assert shown["messages"] == [] and "% of real time" in shown["cost"]
    assert shown["slots"] == [["Reverb", False], ["Dragonfly Hall Reverb", False], ["Dragonfly Hall Reverb", True]]
    not_blank(out, 700, 900)
    keep_for_docs(out, "HARMONIC_EFFECTS_SCREENSHOT_OUT")
