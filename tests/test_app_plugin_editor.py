"""A plugin's own editor in the Effects tab: Debian's Dragonfly Hall Reverb (LV2) and its X11
UI (DPF, OpenGL), embedded in our window on a real X server (Xvfb, Qt's xcb platform), in a
child process as on a desktop. The test reads the X window tree (python-xlib), moves our
slider and sees the UI redraw its knob (port_event), turns the UI's knob with XTest (a real
pointer drag) and sees our slider and the running chain follow, then closes the window and
sees the UI's X window gone. Offscreen (no X server), the Editor button says so in one line."""

from __future__ import annotations

import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from effects_plugins import LV2_DELAY, LV2_REVERB, require_plugins  # noqa: E402
from test_app_screenshot import keep_for_docs, run_on_screen  # noqa: E402

from app.panels.effects import EffectsPanel  # noqa: E402
from engine.effects import describe  # noqa: E402

pytestmark = pytest.mark.timeout(300)

DRIVER = r"""
import json, sys
import numpy as np
from PyQt6.QtCore import QTimer
from PyQt6.QtGui import QGuiApplication
from PyQt6.QtWidgets import QApplication
from Xlib import X, display as xdisplay, error as xerror
from Xlib.ext import xtest
app = QApplication(sys.argv[:1])
from app.panels.effects import EffectsPanel
from engine.effects import PluginFormat, PluginRef, describe

out = sys.argv[1]
DECAY_KNOB = (300, 290)  # the Decay knob's centre in Dragonfly Hall's 920x345 UI
info = describe(PluginRef(PluginFormat.LV2, sys.argv[2], "Dragonfly Hall Reverb"))
panel = EffectsPanel()
panel.set_catalog([info])
panel.resize(900, 700)
panel.show()
panel.add_plugin(info)
x = xdisplay.Display()
report = {}

def knob_pixels(editor):
    image = QGuiApplication.primaryScreen().grabWindow(editor.editor.window, 250, 240, 100, 100).toImage()
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
    yield 500
    ui = editor.editor.window
    host = x.create_resource_object("window", int(editor.host.winId()))
    children = [c.id for c in host.query_tree().children]
    attributes = x.create_resource_object("window", ui).get_attributes()
    geometry = x.create_resource_object("window", ui).get_geometry()
    report["embedded"] = {"ui_is_child": ui in children, "viewable": attributes.map_state == X.IsViewable,
                          "size": [geometry.width, geometry.height], "banner": editor.banner.text()}
    QGuiApplication.primaryScreen().grabWindow(int(editor.winId())).save(out + ".png")
    before = knob_pixels(editor)
    panel.slot_widgets[0].controls["decay"].spin.setValue(5.0)  # as if typed: the slider's path
    yield 300
    report["knob_redrawn"] = knob_pixels(editor) != before
    origin = x.screen().root.translate_coords(x.create_resource_object("window", ui), *DECAY_KNOB)
    start = (origin.x, origin.y)
    pointer(X.ButtonPress, 1, start)
    for step in range(1, 16):
        pointer(None, at=(start[0], start[1] - 4 * step))
        yield 40
    pointer(X.ButtonRelease, 1)
    yield 300
    panel.chain.process(np.zeros(256, np.float32))  # the chain takes changes at its next block
    report["after_drag"] = {"spec": panel.spec.slots[0].parameters["decay"],
                            "slider": panel.slot_widgets[0].controls["decay"].value(),
                            "chain": panel.chain.snapshot().slots[0].parameters["decay"]}
    editor.close()
    yield 200
    try:
        x.create_resource_object("window", ui).get_geometry()
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


def test_the_dragonfly_lv2_editor_embeds_follows_the_sliders_and_drives_the_chain(
    xvfb, tmp_path, tmp_path_factory, request
):
    require_plugins()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    out = tmp_path / "editor.json"
    result = run_on_screen(xvfb, request, tmp_path_factory, [str(driver), str(out), LV2_REVERB.id])
    report = json.loads(out.read_text())
    assert report["embedded"]["ui_is_child"] and report["embedded"]["viewable"], report
    assert report["embedded"]["size"] == [920, 345]
    assert "changes here are heard at once" in report["embedded"]["banner"]
    assert report["knob_redrawn"], "the UI did not redraw its Decay knob after our slider set 5 s"
    dragged = report["after_drag"]
    assert dragged["spec"] > 5.5, dragged  # the drag turned the knob up from our 5 s
    assert dragged["slider"] == pytest.approx(dragged["spec"], abs=0.01)
    assert dragged["chain"] == pytest.approx(dragged["spec"], abs=1e-4)
    assert report["ui_window_gone"] and report["editors_left"] == 0
    assert "BadWindow" not in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
    keep_for_docs(tmp_path / "editor.json.png", "HARMONIC_EDITOR_SCREENSHOT_OUT")


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
