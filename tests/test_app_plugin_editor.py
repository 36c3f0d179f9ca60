"""A plugin's own editor from the Effects tab, with Debian's Dragonfly Hall Reverb on a real
X server (Xvfb, Qt's xcb platform), in a child process as on a desktop. Its LV2 X11 UI
(DPF, OpenGL) is embedded in our window; its VST3 editor runs in a child process of ours
(pedalboard's JUCE window, with an XSETTINGS daemon and a window manager, as a desktop
has). Each time the test reads the X window tree (python-xlib), moves our slider and sees
the UI redraw its knob, turns the UI's knob with XTest (a real pointer drag) and sees our
slider and the running chain follow, then closes the editor and sees its X window gone.
Without the desktop services the VST3 editor's process dies of an X error and the panel
says so in one line; offscreen (no X server), the LV2 editor's banner says it needs X11."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from conftest import require  # noqa: E402
from effects_plugins import LV2_DELAY, LV2_REVERB, VST3_REVERB, build_lv2, require_plugins  # noqa: E402
from test_app_screenshot import keep_for_docs, run_on_screen  # noqa: E402

from app.panels.effects import EffectsPanel  # noqa: E402
from engine.effects import describe  # noqa: E402

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def desktop_services(xvfb):
    """What a desktop has and a bare Xvfb lacks, which pedalboard's JUCE needs to open an
    editor (else Xlib ends its process on an X error): an XSETTINGS daemon and a window
    manager."""
    missing = [tool for tool in ("xsettingsd", "matchbox-window-manager") if not shutil.which(tool)]
    require(f"{', '.join(missing)} not installed (scripts/setup installs them)" if missing else "")
    env = dict(os.environ, DISPLAY=xvfb)
    settings = subprocess.Popen(["xsettingsd", "-c", os.devnull], env=env, stderr=subprocess.DEVNULL)
    manager = subprocess.Popen(["matchbox-window-manager", "-use_titlebar", "no"], env=env, stderr=subprocess.DEVNULL)
    time.sleep(1)  # both own their selections (XSETTINGS, the WM's) before the editor starts
    yield
    for process in (manager, settings):
        process.terminate()
        process.wait(10)


DRIVER = r"""
import json, sys, time
import numpy as np
from PyQt6.QtCore import QTimer
from PyQt6.QtGui import QGuiApplication
from PyQt6.QtWidgets import QApplication
from Xlib import X, display as xdisplay, error as xerror
from Xlib.ext import xtest
app = QApplication(sys.argv[:1])
from app.panels.effects import EffectsPanel
from app.panels.plugin_editor import PluginEditorWindow
from engine.effects import PluginFormat, PluginRef, describe

out, plugin_format, plugin_id, decay = sys.argv[1:5]
UI_SIZE = (920, 345)  # Dragonfly Hall's UI (DPF), in either format
DECAY_KNOB = (300, 290)  # its Decay knob's centre
info = describe(PluginRef(PluginFormat(plugin_format), plugin_id, "Dragonfly Hall Reverb"))
panel = EffectsPanel()
panel.error.connect(lambda line: report.setdefault("errors", []).append(line))
panel.set_catalog([info])
panel.resize(900, 700)
panel.show()
panel.add_plugin(info)
x = xdisplay.Display()
report = {}

def windows(window):
    for child in window.query_tree().children:
        yield child
        yield from windows(child)

def find_ui(editor):
    if isinstance(editor, PluginEditorWindow):
        return editor.editor.window
    for window in windows(x.screen().root):  # the child process's JUCE window holds the DPF UI
        geometry = window.get_geometry()
        if (geometry.width, geometry.height) == UI_SIZE and window.get_attributes().map_state == X.IsViewable:
            return window.id
    return None

def knob_pixels(ui):
    image = QGuiApplication.primaryScreen().grabWindow(ui, 250, 240, 100, 100).toImage()
    return [image.pixel(i, j) for i in range(0, 100, 2) for j in range(0, 100, 2)]

def pointer(kind, detail=0, at=None):
    if at is not None:
        xtest.fake_input(x, X.MotionNotify, x=at[0], y=at[1])
    if kind is not None:
        xtest.fake_input(x, kind, detail)
    x.sync()

def steps():
    panel.slot_widgets[0].editor_button.click()
    editor = panel.editors[id(panel.spec.slots[0])]
    deadline = time.time() + 60
    while (ui := find_ui(editor)) is None and time.time() < deadline:
        yield 200
    yield 500  # drawn
    window = x.create_resource_object("window", ui)
    geometry = window.get_geometry()
    report["ui"] = {"size": [geometry.width, geometry.height],
                    "viewable": window.get_attributes().map_state == X.IsViewable}
    if isinstance(editor, PluginEditorWindow):
        host = x.create_resource_object("window", int(editor.host.winId()))
        report["ui"]["child_of_ours"] = ui in [c.id for c in host.query_tree().children]
        report["ui"]["banner"] = editor.banner.text()
        QGuiApplication.primaryScreen().grabWindow(int(editor.winId())).save(out + ".png")
    before = knob_pixels(ui)
    panel.slot_widgets[0].controls[decay].spin.setValue(5.0)  # as if typed: the slider's path
    yield 500
    report["knob_redrawn"] = knob_pixels(ui) != before
    origin = x.screen().root.translate_coords(window, *DECAY_KNOB)
    start = (origin.x, origin.y)
    pointer(X.ButtonPress, 1, start)
    for step in range(1, 16):
        pointer(None, at=(start[0], start[1] - 4 * step))
        yield 40
    pointer(X.ButtonRelease, 1)
    yield 500
    panel.chain.process(np.zeros(256, np.float32))  # the chain takes changes at its next block
    report["after_drag"] = {"spec": panel.spec.slots[0].parameters[decay],
                            "slider": panel.slot_widgets[0].controls[decay].value(),
                            "chain": panel.chain.snapshot().slots[0].parameters[decay]}
    editor.close()
    deadline = time.time() + 20
    while panel.editors and time.time() < deadline:
        yield 100
    yield 200
    try:
        window.get_geometry()
        report["ui_window_gone"] = False
    except xerror.BadDrawable:
        report["ui_window_gone"] = True
    report["editors_left"] = len(panel.editors)
    json.dump(report, open(out, "w"))
    app.quit()

sequence = steps()
def advance():
    try:
        QTimer.singleShot(next(sequence), advance)
    except StopIteration:
        pass
QTimer.singleShot(300, advance)
app.exec()
"""


def run_editor(xvfb, tmp_path, tmp_path_factory, request, ref, decay: str) -> dict:
    """Runs DRIVER on the Xvfb display for plugin `ref` (its decay parameter `decay`): what it saw."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    out = tmp_path / "editor.json"
    result = run_on_screen(xvfb, request, tmp_path_factory, [str(driver), str(out), ref.format, ref.id, decay])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["ui"]["size"] == [920, 345] and report["ui"]["viewable"], report
    assert report["knob_redrawn"], "the UI did not redraw its Decay knob after our slider set 5 s"
    dragged = report["after_drag"]
    assert dragged["spec"] > 5.5, dragged  # the drag turned the knob up from our 5 s
    assert dragged["slider"] == pytest.approx(dragged["spec"], abs=0.01)
    assert dragged["chain"] == pytest.approx(dragged["spec"], abs=1e-3)
    assert report["ui_window_gone"] and report["editors_left"] == 0 and "errors" not in report, report
    return report


def test_the_dragonfly_lv2_editor_embeds_follows_the_sliders_and_drives_the_chain(
    xvfb, tmp_path, tmp_path_factory, request
):
    require_plugins()
    report = run_editor(xvfb, tmp_path, tmp_path_factory, request, LV2_REVERB, "decay")
    assert report["ui"]["child_of_ours"], report
    assert "changes here are heard at once" in report["ui"]["banner"]
    keep_for_docs(tmp_path / "editor.json.png", "HARMONIC_EDITOR_SCREENSHOT_OUT")


def test_the_dragonfly_vst3_editor_runs_in_a_child_process_and_drives_the_chain(
    xvfb, desktop_services, tmp_path, tmp_path_factory, request
):
    require_plugins()
    run_editor(xvfb, tmp_path, tmp_path_factory, request, VST3_REVERB, "decay_s")


def test_a_vst3_editor_that_dies_of_an_x_error_is_one_line_and_the_app_lives_on(xvfb, qtbot, monkeypatch):
    """A bare Xvfb has no XSETTINGS daemon: pedalboard's JUCE asks window 0 for its
    settings and Xlib ends the editor's process; the panel says that, and only that."""
    require_plugins()
    monkeypatch.setenv("DISPLAY", xvfb)  # the editor's process shows its window there
    panel = EffectsPanel()
    qtbot.addWidget(panel)
    reverb = describe(VST3_REVERB)
    assert reverb.has_editor
    panel.set_catalog([reverb])
    panel.add_plugin(reverb)
    errors: list[str] = []
    panel.error.connect(errors.append)
    editor = panel.open_editor(0)
    with qtbot.waitSignal(editor.closed, timeout=60000):
        pass
    assert errors == [
        "Dragonfly Hall Reverb's editor: X Error of failed request:  BadWindow (invalid Window parameter)"
    ]
    assert panel.editors == {} and panel.chain is not None


DAMAGED_UI = """
@prefix ui: <http://lv2plug.in/ns/extensions/ui#> .
<urn:harmonic-test:crash> ui:ui <urn:harmonic-test:damaged-ui> .
<urn:harmonic-test:damaged-ui> a ui:X11UI ; ui:binary <damaged_ui.so> .
"""

DAMAGED_DRIVER = r"""
import json, sys
from PyQt6.QtWidgets import QApplication
app = QApplication(sys.argv[:1])
from app.panels.plugin_editor import PluginEditorWindow
from engine.effects import PluginFormat, PluginRef, describe

info = describe(PluginRef(PluginFormat.LV2, "urn:harmonic-test:crash", "crash"))
window = PluginEditorWindow(info)
window.show()
opened = window.open_ui({}, 16000)
json.dump({"has_editor": info.has_editor, "opened": opened, "banner": window.banner.text()}, open(sys.argv[1], "w"))
"""


def test_an_editor_that_cannot_load_says_why_in_its_banner(xvfb, tmp_path, tmp_path_factory, request):
    """An LV2 bundle whose X11 UI binary is text: the window opens and its banner names the
    loader's reason in one line; nothing else is printed."""
    bundle = build_lv2(tmp_path / "lv2", "crash", "urn:harmonic-test:crash", "crash")
    with (bundle / "manifest.ttl").open("a") as manifest:
        manifest.write(DAMAGED_UI)
    (bundle / "damaged_ui.so").write_text("not a shared library\n")
    driver = tmp_path / "driver.py"
    driver.write_text(DAMAGED_DRIVER)
    out = tmp_path / "banner.json"
    result = run_on_screen(xvfb, request, tmp_path_factory, [str(driver), str(out)], LV2_PATH=str(tmp_path / "lv2"))
    shown = json.loads(out.read_text())
    assert shown["has_editor"] and not shown["opened"], shown
    assert shown["banner"].startswith("Cannot open the editor: crash: its editor's library does not load (")
    assert "damaged_ui.so: file too short)" in shown["banner"] and "\n" not in shown["banner"]
    assert "Traceback" not in result.stderr, result.stderr


def test_without_an_x_server_the_editor_says_so_in_one_line(qtbot):
    require_plugins()
    reverb, delay = describe(LV2_REVERB), describe(LV2_DELAY)
    assert reverb.has_editor and not delay.has_editor  # Dragonfly's bundle declares an X11 UI, MDA's none
    panel = EffectsPanel()
    qtbot.addWidget(panel)
    panel.set_catalog([reverb, delay])
    panel.add_plugin(reverb)
    panel.add_plugin(delay)
    assert not panel.slot_widgets[0].editor_button.isHidden() and panel.slot_widgets[1].editor_button.isHidden()
    panel.slot_widgets[0].editor_button.click()
    editor = panel.editors[id(panel.spec.slots[0])]
    assert editor.editor is None
    assert editor.banner.text().startswith("The plugin's editor needs an X11 display")
    assert "\n" not in editor.banner.text()
    panel.remove(0)  # removing the slot closes its editor
    assert panel.editors == {}
