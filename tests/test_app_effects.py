"""The effects chain in the app, with real plugins (pedalboard's built-ins and Debian's
LV2 bundles) and real Qt offscreen: the panel's controls come from each plugin's
parameter list and reach the running chain; presets round-trip; a plugin that sends NaN
is muted and the window says so; a take keeps its dry audio and its chain, re-renders
from them to the audio that was played, and exports dry or processed. The live stream
through a chain on a real sound server is tested at the end (PulseAudio's null sink).
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pulse  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from effects_plugins import LV2_DELAY, LV2_SHAPER, VST3_REVERB, require_plugins  # noqa: E402
from PyQt6.QtCore import Qt  # noqa: E402

from app import workers  # noqa: E402
from app.library import ExportAudio, Library  # noqa: E402
from app.panels.effects import EffectsPanel  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.window import MainWindow  # noqa: E402
from engine.effects import (  # noqa: E402
    Catalog,
    ChainSpec,
    PluginFormat,
    PluginRef,
    ScanFailure,
    builtin_plugins,
    describe,
)

pytestmark = pytest.mark.timeout(300)

LV2_COMBO = PluginRef(PluginFormat.LV2, "http://drobilla.net/plugins/mda/Combo", "MDA Combo")  # float, bool, choice


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    """The built-ins and the LV2 plugins these tests use (the window's own scan is
    `engine.effects.load_catalog`, tested with the engine)."""
    require_plugins()
    return Catalog(
        builtin_plugins() + [describe(ref) for ref in (LV2_COMBO, LV2_DELAY, LV2_SHAPER, VST3_REVERB)],
        [ScanFailure("/usr/lib/lv2/broken.lv2", PluginFormat.LV2, "it crashed the scan (SIGSEGV)")],
    )


def snapshot_after_a_block(chain):
    """The chain's settings as its audio thread sees them: after it has run a block."""
    chain.process(np.zeros(256, np.float32))
    return chain.snapshot()


def test_panel_controls_come_from_the_parameters_and_reach_the_running_chain(qtbot, catalog, tmp_path):
    panel = EffectsPanel()
    qtbot.addWidget(panel)
    panel.set_catalog(catalog.plugins, catalog.failures)
    assert panel.plugin_box.count() == len(catalog.plugins)
    assert "1 plugin(s) could not be loaded" in panel.failures_label.text()
    assert "broken.lv2 (lv2): it crashed the scan (SIGSEGV)" in panel.failures_label.toolTip()

    for name in ("Reverb", "MDA Combo", "Delay"):
        panel.plugin_box.setCurrentIndex(panel.plugin_box.findText(f"{name}  (", Qt.MatchFlag.MatchStartsWith))
        panel.add_button.click()
    chain = panel.chain
    assert [s.ref.name for s in chain.snapshot().slots] == ["Reverb", "MDA Combo", "Delay"]
    reverb, combo, delay = panel.slot_widgets
    # one control per parameter, of the parameter's kind, with its range and unit
    assert list(reverb.controls) == [p.name for p in panel.plugin("Reverb").parameters]
    delay_time = delay.controls["delay_seconds"].spin
    assert delay_time.suffix() == " s" and delay_time.maximum() == 2.0
    model = combo.controls["model"].combo
    choices = panel.plugin("MDA Combo").parameter("model").choices
    assert [model.itemText(i) for i in range(model.count())] == list(choices)
    assert combo.controls["stereo"].check.isChecked() is bool(panel.plugin("MDA Combo").parameter("stereo").default)

    # a change in the panel reaches the running chain (no rebuild: the same chain object)
    reverb.controls["room_size"].slider.setValue(900)
    model.setCurrentIndex(2)
    combo.controls["stereo"].check.setChecked(not combo.controls["stereo"].check.isChecked())
    combo.bypass.setChecked(True)
    delay.mix.spin.setValue(40)
    live = snapshot_after_a_block(chain)
    assert panel.chain is chain
    assert live.slots[0].parameters["room_size"] == pytest.approx(0.9)
    assert live.slots[1].parameters["model"] == model.itemText(2)
    assert live.slots[1].parameters["stereo"] == combo.controls["stereo"].check.isChecked()
    assert live.slots[1].bypass and live.slots[2].mix == pytest.approx(0.4)

    # reorder and remove rebuild the chain, keeping every setting
    panel.slot_widgets[0].down_button.click()
    chain = panel.chain
    live = snapshot_after_a_block(chain)
    assert [s.ref.name for s in live.slots] == ["MDA Combo", "Reverb", "Delay"]
    assert live.slots[1].parameters["room_size"] == pytest.approx(0.9) and live.slots[0].bypass
    panel.slot_widgets[2].remove_button.click()
    chain = panel.chain
    assert [s.ref.name for s in chain.snapshot().slots] == ["MDA Combo", "Reverb"]
    assert not panel.slot_widgets[0].up_button.isEnabled() and not panel.slot_widgets[1].down_button.isEnabled()

    # 48 kHz: the chain runs resampled, its cost and latency are shown
    panel.high_rate.setChecked(True)
    chain = panel.chain
    assert chain.rate == 48000 and chain.latency_samples > 0
    for _ in range(4):
        chain.process(np.zeros(1600, np.float32))
    panel.show_stats(chain)
    share = 100 * chain.cost_ms / (1000 * chain.block_seconds)
    assert f"{chain.cost_ms:.2f} ms per block ({share:.1f}% of real time)" in panel.cost_label.text()
    assert f"({chain.latency_samples} samples)" in panel.latency_label.text()

    # a preset saved from the panel loads into another panel as the same chain
    preset = tmp_path / "chain.json"
    assert panel.save_preset(preset)
    other = EffectsPanel()
    qtbot.addWidget(other)
    other.set_catalog(catalog.plugins)
    assert other.load_preset(preset)
    loaded = other.chain
    assert loaded.snapshot().to_json() == chain.snapshot().to_json()
    assert other.high_rate.isChecked() and len(other.slot_widgets) == 2
    assert other.slot_widgets[1].controls["room_size"].value() == pytest.approx(0.9)
    errors = []
    other.error.connect(errors.append)
    (tmp_path / "bad.json").write_text('{"slots": [{"format": "lv2"}]}')
    assert not other.load_preset(tmp_path / "bad.json")
    assert errors == [f"{tmp_path / 'bad.json'}: bad chain file: slot 1: id must be a non-empty string"]


def make_window(qtbot, tmp_path, checkpoint, catalog):
    window = MainWindow(
        library=Library(tmp_path / "library"),
        settings=Settings(str(tmp_path / "settings.ini")),
        checkpoint=str(checkpoint),
        plugin_catalog=lambda: catalog,
    )
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.model_status != "loading" and bool(window.effects_panel.catalog), timeout=60000)
    return window


@pytest.fixture
def window(qtbot, tmp_path, tiny_checkpoint, catalog):
    window = make_window(qtbot, tmp_path, tiny_checkpoint, catalog)
    yield window
    window.close()
    workers.wait_all()


def generate(qtbot, window, seconds):
    window.controls.endless.setChecked(False)
    window.controls.seconds.setValue(seconds)
    window.transport.generate_button.click()
    with qtbot.waitSignal(window.session.takeSaved, timeout=120000) as blocker:
        pass
    return blocker.args[0]


def test_a_plugin_that_sends_nan_is_muted_and_the_window_says_so(qtbot, window):
    panel = window.effects_panel
    panel.add_plugin(panel.plugin("Wave shaper"))
    panel.slot_widgets[0].controls["shapep"].spin.setValue(-10.0)  # swh's shaper sends NaN here
    take = generate(qtbot, window, 0.5)
    qtbot.waitUntil(lambda: any("sent NaN" in m for m in window.messages), timeout=5000)
    assert "Wave shaper (slot 1) sent NaN or Inf: muted" in window.banner.text()
    assert panel.slot_widgets[0].guard_label.text() == "MUTED: NaN/Inf"
    assert np.isfinite(window.session.program.latest(take.frames)).all()  # nothing but finite audio went out
    # a new take starts with the chain reset: with a shape that sends no NaN, it is not muted
    panel.slot_widgets[0].controls["shapep"].spin.setValue(0.0)
    generate(qtbot, window, 0.5)
    assert panel.slot_widgets[0].guard_label.text() == ""
    assert sum("sent NaN" in m for m in window.messages) == 1


def test_a_take_keeps_its_chain_re_renders_to_what_was_played_and_exports_both(qtbot, window, tmp_path):
    panel = window.effects_panel
    for name in ("Reverb", "MDA Delay", "Dragonfly Hall Reverb"):  # built-in, LV2, VST3
        panel.add_plugin(panel.plugin(name))
    panel.slot_widgets[0].controls["room_size"].spin.setValue(0.8)
    take = generate(qtbot, window, 1.0)
    assert take is not None and take.frames == 16000
    stored = ChainSpec.from_json(take.effects)
    assert [s.ref.name for s in stored.slots] == ["Reverb", "MDA Delay", "Dragonfly Hall Reverb"]
    assert stored.slots[2].state  # the VST3 plugin's own state is kept too
    assert stored.slots[0].parameters["room_size"] == pytest.approx(0.8)

    # what went to the sound card (the program tap) is the dry take through the chain...
    played = window.session.program.latest(take.frames)
    dry = take.read().mean(axis=1)
    assert np.abs(played - dry).max() > 0.05
    # ...and the take re-renders from its stored chain to the same audio (up to the 16-bit
    # FLAC that keeps the dry audio), with the chain's tail after it
    processed = take.processed()
    assert processed.shape == (take.frames + 32000,)
    np.testing.assert_allclose(processed[: take.frames], played, atol=3e-4)
    assert np.abs(processed[take.frames :]).max() > 1e-3  # the reverb rings on

    # export: dry keeps the take as generated, processed is the re-render
    browser = window.browser
    browser.select_ids([take.id])
    for audio, expected in ((ExportAudio.DRY, dry), (ExportAudio.PROCESSED, np.clip(processed, -1, 1))):
        browser.audio_box.setCurrentIndex(browser.audio_box.findData(audio))
        browser.format_box.setCurrentText("wav")
        browser.rate_box.setCurrentIndex(browser.rate_box.findData(16000))
        task = browser.export_selected(tmp_path / str(audio))
        qtbot.waitUntil(lambda task=task: not task.running, timeout=30000)
        (path,) = (tmp_path / str(audio)).iterdir()
        data, rate = sf.read(str(path), dtype="float32")
        assert rate == 16000
        np.testing.assert_allclose(data, expected, atol=1e-4)
    assert window.settings.get("export/audio") == "processed"

    # the take's chain comes back into the panel; re-rendering through another chain
    # keeps the dry audio
    for _ in range(3):
        panel.remove(0)
    browser.chain_button.click()
    assert [s.ref.name for s in panel.spec.slots] == ["Reverb", "MDA Delay", "Dragonfly Hall Reverb"]
    assert panel.slot_widgets[0].controls["room_size"].value() == pytest.approx(0.8)
    panel.remove(2)
    panel.remove(1)
    browser.rerender_button.click()
    again = window.library.get(take.id)
    assert [s.ref.name for s in ChainSpec.from_json(again.effects).slots] == ["Reverb"]
    np.testing.assert_array_equal(again.read(), take.read())
    assert np.abs(again.processed() - processed).max() > 0.01


def test_an_older_library_gains_the_effects_column(tmp_path):
    import sqlite3

    root = tmp_path / "old"
    (root / "takes").mkdir(parents=True)
    with sqlite3.connect(root / "library.sqlite") as db:  # the schema before effects were kept
        db.execute(
            "CREATE TABLE takes (id TEXT PRIMARY KEY, name TEXT NOT NULL,"
            " state TEXT NOT NULL DEFAULT 'recording', deleted INTEGER NOT NULL DEFAULT 0,"
            " starred INTEGER NOT NULL DEFAULT 0, recovered INTEGER NOT NULL DEFAULT 0, created TEXT NOT NULL,"
            " frames INTEGER NOT NULL DEFAULT 0, voices INTEGER NOT NULL DEFAULT 1,"
            " checkpoint TEXT NOT NULL DEFAULT '', checkpoint_path TEXT NOT NULL DEFAULT '', temperature REAL,"
            " top_p REAL, seed INTEGER, seed_audio TEXT NOT NULL DEFAULT '',"
            " seed_frames INTEGER NOT NULL DEFAULT 0, extra TEXT NOT NULL DEFAULT '{}', thumbnail BLOB)"
        )
        db.execute(
            "INSERT INTO takes (id, name, state, created, frames)"
            " VALUES ('old', 'Old take', 'done', '2026-01-01', 1600)"
        )
    sf.write(str(root / "takes" / "old.flac"), np.full(1600, 0.25, np.float32), 16000, subtype="PCM_16")
    with Library(root) as library:
        old = library.get("old")
        assert old.effects == "" and library.check() == []
        np.testing.assert_allclose(old.processed(), 0.25, atol=1e-4)  # no chain: the dry mix
        chain = ChainSpec.from_json(
            '{"slots": [{"format": "builtin", "id": "Gain", "name": "Gain", "parameters": {"gain_db": -6.0}}]}'
        )
        library.set_effects("old", chain.to_json())
        np.testing.assert_allclose(library.get("old").processed()[:1600], 0.25 * 10 ** (-6 / 20), atol=1e-4)


# ---- live, through a real sound server ---------------------------------------------------

# After pulse.APP_DRIVER_PROLOGUE, which opens the window and defines `wait`.
DRIVER = r"""
panel = window.effects_panel
wait(lambda: window.model_status != "loading" and panel.catalog, 120, "the model and the plugin catalog")
panel.add_plugin(panel.plugin("Reverb"))
panel.add_plugin(panel.plugin("MDA Delay"))  # an installed LV2 plugin (mda-lv2)
panel.high_rate.setChecked(True)  # at 48 kHz: the chain has a latency
window.controls.endless.setChecked(False)
window.controls.seconds.setValue(2.0)
window.transport.generate_button.click()
wait(lambda: "% of real time" in panel.cost_label.text(), 300, "the chain's cost while playing")
cost = panel.cost_label.text()
wait(lambda: window.last_take is not None or window.transport.state == "error", 300, "the take")
take = window.last_take
np.save(os.path.join(out, "played.npy"), window.session.program.latest(take.frames))
stats = window.session.stats()
window.browser.select_ids([take.id])
window.browser.play_button.click()  # played again from the library, through its stored chain
wait(lambda: window.playback.player is not None and window.playback.player.state in ("finished", "error", "stopped"),
     60, "playback")
np.save(os.path.join(out, "played_back.npy"), window.playback.program.latest(take.frames))
json.dump({"messages": window.messages, "underruns": stats["underruns"], "take": take.id,
           "seconds": stats["seconds"], "heard": window.session.heard_samples,
           "playback_underruns": window.playback.player.underruns,
           "frames": take.frames, "effects": take.effects, "latency": panel.chain.latency_samples,
           "drawn": window.monitor.position, "cost": cost},
          open(os.path.join(out, "result.json"), "w"))
window.close()
"""


def test_the_live_stream_plays_through_the_chain_on_the_sound_card(
    pulse_server, tiny_checkpoint, tmp_path, tmp_path_factory
):
    require_plugins()
    cache = tmp_path_factory.getbasetemp() / "app-jaxcache"
    result = pulse_server.run_app_driver(DRIVER, tiny_checkpoint, tmp_path, cache, timeout=280)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    out = json.loads((tmp_path / "result.json").read_text())
    assert out["messages"] == [], out["messages"]
    assert out["underruns"] == 0
    stored = ChainSpec.from_json(out["effects"])
    assert [s.ref.name for s in stored.slots] == ["Reverb", "MDA Delay"] and stored.rate == 48000
    latency = out["latency"]
    assert latency > 0 and out["seconds"] == (out["heard"] - latency) / 16000  # the clock takes the latency off
    assert out["drawn"] >= out["frames"] and " ms per block (" in out["cost"]

    # the processed audio, not the dry take, is what the sink received: every 0.25 s
    # block of it (after the null sink's silent start) is found there, but for at most
    # one block that the sound server itself may drop under load (tests/test_app_pulse.py)
    played = np.load(tmp_path / "played.npy")
    with Library(tmp_path / "library") as library:
        take = library.get(out["take"])
        dry = take.read()[:, 0]
        processed = take.processed()  # re-rendered from the dry take and the stored chain, latency removed
    assert np.abs(played - dry).max() > 0.05
    np.testing.assert_allclose(processed[: take.frames - latency], played[latency:], atol=3e-4)
    # Play in the library sends the dry take through its stored chain again
    played_back = np.load(tmp_path / "played_back.npy")
    np.testing.assert_allclose(played_back, played, atol=3e-4)
    assert out["playback_underruns"] == 0
    recorded = np.fromfile(tmp_path / "speaker.raw", dtype="<f4")
    block = 4000
    starts = range(2000, played.size - block + 1, block)
    found = []
    for start in starts:
        lag, correlation = pulse.align(played[start : start + block], recorded)
        if correlation > 0.99:
            _, with_dry = pulse.align(dry[start : start + block], recorded)
            assert with_dry < correlation, (start, with_dry, correlation)
            found.append(start)
    assert len(found) >= len(starts) - 1, (found, list(starts))
