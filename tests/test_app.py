"""The desktop app, driven through its real window offscreen (pytest-qt).

A random `tiny` checkpoint stands in for the shipped model; there is no sound card here,
so the window renders takes at real time without one (and says so), which is what the
library, the views and seeding need. tests/test_app_pulse.py covers the sound card.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from conftest import crash  # noqa: E402
from full_disk import FullDiskFile  # noqa: E402
from PyQt6.QtCore import Qt  # noqa: E402
from runaway_model import COLLAPSE, falls_silent, longest_run  # noqa: E402

from app import workers  # noqa: E402
from app.library import Library  # noqa: E402
from app.library_browser import NAME, STAR  # noqa: E402
from app.main import build_parser  # noqa: E402
from app.panels.controls import ControlsPanel  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.window import ErrorBanner, MainWindow  # noqa: E402
from engine.checkpoint import save_model  # noqa: E402
from engine.generation_settings import GenerationSettings  # noqa: E402
from engine.mulaw import encode  # noqa: E402
from engine.watchdog import WatchdogSettings  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def make_window(qtbot, tmp_path, checkpoint, **kwargs):
    window = MainWindow(
        library=Library(tmp_path / "library"),
        settings=Settings(str(tmp_path / "settings.ini")),
        checkpoint=str(checkpoint) if checkpoint else None,
        **kwargs,
    )
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.model_status != "loading", timeout=60000)
    return window


@pytest.fixture
def window(qtbot, tmp_path, tiny_checkpoint):
    window = make_window(qtbot, tmp_path, tiny_checkpoint)
    assert window.checkpoint is not None and window.checkpoint.name == "tiny-test"
    yield window
    window.close()
    workers.wait_all()


def generate(qtbot, window, seconds=1.0, timeout=120000):
    window.controls.endless.setChecked(False)
    window.controls.seconds.setValue(seconds)
    qtbot.mouseClick(window.transport.generate_button, Qt.MouseButton.LeftButton)
    assert window.session is not None
    with qtbot.waitSignal(window.session.takeSaved, timeout=timeout) as blocker:
        pass
    return blocker.args[0]


def test_window_opens_with_the_card_and_one_click_generates_into_the_library(qtbot, window):
    card = window.model_panel.card.text()
    assert "tiny-test" in card and "34,160" in card and "random weights" in card and "8.000" in card
    window.controls.temperature.setValue(0.9)
    window.controls.top_p.setValue(0.95)
    window.controls.random_seed.setValue(42)
    drawn, columns = window.waveform.frames_drawn, window.spectrogram.columns_added
    states = []
    take = generate(qtbot, window, seconds=1.5)
    states.append(window.transport.state)
    assert take is not None and take.frames == 24000 and take.checkpoint == "tiny-test"
    assert (take.temperature, take.top_p, take.random_seed, take.voices) == (0.9, 0.95, 42, 1)
    assert take.path.exists() and sf.info(str(take.path)).frames == 24000
    # the live views received data while generating
    assert window.waveform.frames_drawn > drawn and window.spectrogram.columns_added > columns
    assert window.monitor.position == 24000  # the views followed the program tap to the end
    assert window.transport.state == "idle" and window.transport.generate_button.isEnabled()
    # listed in the browser and selected
    assert [t.id for t in window.browser.visible_takes()] == [take.id]
    assert window.browser.selected_ids() == [take.id]


def test_browser_play_rename_star_delete_undo_export(qtbot, window, tmp_path):
    first = generate(qtbot, window, seconds=0.5)
    window.controls.voices.setValue(2)
    second = generate(qtbot, window, seconds=0.5)
    assert second.voices == 2
    browser = window.browser
    assert len(browser.visible_takes()) == 2

    browser.select_ids([first.id])
    browser.play_button.click()
    # it plays where a sound card is found; where none is, the window says so
    assert window.playback.playing or "audio output device" in window.banner.text(), window.banner.text()

    # rename through the table's editor, star by clicking the star column
    row = [t.id for t in browser.visible_takes()].index(first.id)
    assert browser.proxy.setData(browser.proxy.index(row, NAME), "Morning piano")
    assert window.library.get(first.id).name == "Morning piano"
    star = browser.proxy.index(row, STAR)
    qtbot.mouseClick(browser.table.viewport(), Qt.MouseButton.LeftButton, pos=browser.table.visualRect(star).center())
    assert window.library.get(first.id).starred
    browser.starred_filter.setChecked(True)
    assert [t.id for t in browser.visible_takes()] == [first.id]
    browser.starred_filter.setChecked(False)
    browser.search.setText("morning")
    assert [t.id for t in browser.visible_takes()] == [first.id]
    browser.search.clear()

    # delete with undo
    browser.select_ids([first.id, second.id])
    browser.delete_button.click()
    assert browser.visible_takes() == []
    browser.undo_button.click()
    assert {t.id for t in browser.visible_takes()} == {first.id, second.id}
    assert window.library.get(first.id).path.exists()

    # export both in each format and rate; read the files back
    for fmt in ("wav", "flac", "ogg"):
        for rate in (16000, 48000):
            browser.format_box.setCurrentText(fmt)
            browser.rate_box.setCurrentIndex(browser.rate_box.findData(rate))
            out = tmp_path / f"export-{fmt}-{rate}"
            task = browser.export_selected(out)
            qtbot.waitUntil(lambda task=task: not task.running, timeout=30000)
            files = sorted(out.iterdir())
            assert len(files) == 2, window.messages
            for path in files:
                data, got = sf.read(str(path), always_2d=True)
                assert got == rate and abs(len(data) - rate // 2) < rate // 50
                assert data.shape[1] in (1, 2)
    assert window.settings.get("export/format") == "ogg"

    # drag and drop hands the file manager file URLs of exported files
    browser.format_box.setCurrentText("wav")
    browser.select_ids([first.id])
    mime = browser.table.mimeData_for_selection()
    (url,) = mime.urls()
    assert url.isLocalFile() and url.toLocalFile().endswith("Morning piano.wav")
    assert sf.info(url.toLocalFile()).samplerate == 48000


def test_seed_audio_from_a_file_then_generate(qtbot, window, tmp_path):
    t = np.arange(22050) / 44100
    path = tmp_path / "seed.wav"
    sf.write(str(path), (0.5 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 44100)
    task = window.seed_audio_panel.open_file(path)
    qtbot.waitUntil(lambda: not task.running and window.seed_audio_panel.use.isChecked(), timeout=30000)
    assert window.seed_audio_panel.waveform.audio.size == 8000  # resampled to 16 kHz
    window.seed_audio_panel.waveform.set_trim(0, 6400)  # trim to 0.4 s
    seed_audio = window.seed_audio_panel.seed_audio()
    assert seed_audio.audio.size == 6400 and seed_audio.source == "seed.wav"
    take = generate(qtbot, window, seconds=0.5)
    assert take.seed_audio == "seed.wav" and take.seed_frames == 6400 and take.frames == 6400 + 8000
    data = take.read()[:, 0]
    assert np.corrcoef(data[:6400], seed_audio.audio)[0, 1] > 0.9  # the take starts with the seed audio
    assert window.monitor.position == 14400
    np.testing.assert_allclose(window.waveform.data[-14400:], take.read()[:, 0], atol=1e-4)  # the views drew the take
    seed_flags = window.waveform.seed_audio[-14400:]
    assert seed_flags[:6400].all() and not seed_flags[6400:].any()  # drawn in the seed audio colour


def test_errors_are_shown_in_the_window(qtbot, tmp_path, tiny_checkpoint):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "params").mkdir()
    (broken / "model").mkdir()
    window = make_window(qtbot, tmp_path, broken)
    assert window.checkpoint is None
    assert "Could not load the model" in window.banner.text()
    window.generate()
    assert "No model is loaded" in window.banner.text()
    bad = tmp_path / "not-audio.wav"
    bad.write_bytes(b"this is not audio")
    task = window.seed_audio_panel.open_file(bad)
    qtbot.waitUntil(lambda: not task.running, timeout=10000)
    qtbot.waitUntil(lambda: "not-audio.wav: not an audio file" in window.banner.text(), timeout=5000)
    window.close()


def test_the_banner_keeps_problems_that_come_together_in_view(qtbot):
    """No sound card and a muted plugin at once: both lines stay, newest first, a repeat
    moves up instead of showing twice, and closing the banner clears them."""
    banner = ErrorBanner()
    qtbot.addWidget(banner)
    banner.show_message("Wave shaper (slot 1) sent NaN or Inf: muted")
    banner.show_message("No sound: no audio output device found")
    assert banner.text() == "No sound: no audio output device found<br>Wave shaper (slot 1) sent NaN or Inf: muted"
    banner.show_message("Wave shaper (slot 1) sent NaN or Inf: muted")
    assert banner.text().split("<br>") == [
        "Wave shaper (slot 1) sent NaN or Inf: muted",
        "No sound: no audio output device found",
    ]
    for n in range(5):
        banner.show_message(f"message {n}")
    assert banner.text().split("<br>") == ["message 4", "message 3", "message 2"]
    banner.dismiss()
    assert banner.text() == ""
    banner.show_message("after")
    assert banner.text() == "after"


def test_missing_default_checkpoint_still_opens(qtbot, tmp_path, monkeypatch):
    import engine.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "DEFAULT_CHECKPOINT", tmp_path / "nowhere" / "piano-realtime")
    monkeypatch.setattr(checkpoint, "CHECKPOINTS", tmp_path / "nowhere")
    window = make_window(qtbot, tmp_path, None)
    assert window.checkpoint is None and "no checkpoint at" in window.banner.text()
    assert window.isVisible() and window.transport.generate_button.isEnabled()
    window.close()


def test_settings_persist(qtbot, tmp_path, tiny_checkpoint):
    window = make_window(qtbot, tmp_path, tiny_checkpoint)
    window.controls.temperature.setValue(0.7)
    window.controls.random_seed.setValue(1234)
    window.controls.endless.setChecked(False)
    window.controls.voices.setValue(3)
    assert window.controls.watchdog.isChecked()  # on unless switched off
    window.controls.watchdog.setChecked(False)
    window.browser.format_box.setCurrentText("flac")
    window.close()
    workers.wait_all()
    again = make_window(qtbot, tmp_path, None)
    settings = again.controls.generation_settings()
    assert (settings.temperature, settings.random_seed, settings.voices) == (0.7, 1234, 3)
    assert settings.watchdog is None
    assert again.controls.take_seconds() == 10.0
    assert again.checkpoint_path == str(tiny_checkpoint)  # the last model is reopened
    again.close()


def test_settings_saved_by_an_earlier_version_are_read(qtbot, tmp_path):
    """The random seed was saved as controls/seed; it is read until saved under its new name."""
    path = tmp_path / "old.ini"
    path.write_text("[controls]\nseed=4321\ntemperature=0.8\n")
    settings = Settings(str(path))
    controls = ControlsPanel(settings)
    qtbot.addWidget(controls)
    expected = GenerationSettings(temperature=0.8, random_seed=4321, watchdog=WatchdogSettings())
    assert controls.generation_settings() == expected
    controls.random_seed.setValue(5)  # saves under the new name, which wins from now on
    settings.sync()
    assert Settings(str(path)).get("controls/random_seed") == 5


def test_seed_audio_option_keeps_its_older_name():
    assert build_parser().parse_args(["--seed-audio", "a.wav"]).seed_audio == "a.wav"
    assert build_parser().parse_args(["--seed", "b.wav"]).seed_audio == "b.wav"


def test_stop_ends_an_endless_take_and_keeps_it(qtbot, window):
    window.controls.endless.setChecked(True)
    window.transport.generate_button.click()
    qtbot.waitUntil(lambda: window.monitor.position >= 8000, timeout=120000)
    assert window.transport.stop_button.isEnabled()
    window.controls.temperature.setValue(0.5)  # applied live, from the next chunk
    window.controls.top_p.setValue(0.999)  # three decimals: 0.99 already silences a piano take
    settings = window.session.generator.settings
    assert (settings.temperature, settings.top_p) == (0.5, 0.999)
    with qtbot.waitSignal(window.session.takeSaved, timeout=30000) as blocker:
        window.transport.stop_button.click()
    take = blocker.args[0]
    assert take is not None and take.frames >= 8000
    assert window.transport.state == "idle"


def test_interrupted_take_is_recovered_at_start(qtbot, tmp_path, tiny_checkpoint):
    library = Library(tmp_path / "library")
    writer = library.begin_take({"checkpoint": "tiny-test"})
    writer.write(np.zeros(4000, np.float32))
    crash(library)  # no finish
    window = make_window(qtbot, tmp_path, tiny_checkpoint)
    (take,) = window.browser.visible_takes()
    assert take.recovered and take.frames == 4000
    assert "Recovered 1 take" in window.banner.text()
    window.close()


def test_full_disk_while_generating_is_reported(qtbot, window, monkeypatch):

    from app import library as lib

    original = lib.TakeWriter.write

    def write(self, block):
        if self.frames >= 1600:  # the disk fills up a little into the take
            self._file.close()
            self._file = FullDiskFile()
        return original(self, block)

    monkeypatch.setattr(lib.TakeWriter, "write", write)
    assert generate(qtbot, window, seconds=1.0) is None
    assert "disk is full" in window.banner.text()
    assert window.transport.state == "error" and window.transport.generate_button.isEnabled()
    assert window.library.takes() == [] and not any(window.library.partial_dir.iterdir())


def test_killed_while_generating_recovers_the_take(tmp_path, tmp_path_factory, tiny_checkpoint):
    """A real crash: the app is killed (SIGKILL) mid-take; the next start recovers it."""
    import signal
    import subprocess
    import sys
    import time

    library = tmp_path / "library"
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        JAX_PLATFORMS="cpu",
        PULSE_SERVER="unix:/nonexistent",
        HARMONIC_COMPILE_CACHE=str(tmp_path_factory.getbasetemp() / "app-jaxcache"),
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.main",
            "--checkpoint",
            str(tiny_checkpoint),
            "--library",
            str(library),
            "--settings",
            str(tmp_path / "s.ini"),
            "--generate",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 240
        partial = library / "takes" / ".partial"
        while time.time() < deadline:
            files = list(partial.glob("*.f32")) if partial.exists() else []
            if files and files[0].stat().st_size >= 4 * 16000:  # a second of audio on disk
                break
            assert process.poll() is None, "the app exited"
            time.sleep(0.2)
        else:
            pytest.fail("the app did not start recording a take")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    with Library(library) as reopened:
        (take,) = reopened.takes()
        assert take.recovered and take.frames >= 16000 and take.checkpoint == "tiny-test"
        assert take.read().shape == (take.frames, 1)
        assert not any(reopened.partial_dir.iterdir())


def test_controls_model_panel_and_filters(qtbot, window, tmp_path, tiny_checkpoint):
    before = window.controls.random_seed.value()
    window.controls.new_random_seed.click()
    assert window.controls.random_seed.value() != before
    window.controls.endless.setChecked(False)
    assert window.controls.seconds.isEnabled() and window.controls.take_seconds() == 10.0
    # the two meanings of "seed" have their own names on screen
    form = window.controls.layout()
    assert form.labelForField(window.controls.random_seed.parentWidget()).text() == "Random seed"
    assert window.seed_audio_panel.title() == "Seed audio" and window.tabs.tabText(0) == "Seed audio"
    assert window.controls.output_device.itemText(0) == "System default"
    # a checkpoint folder opened by the user is listed, loaded, its card shown, remembered
    import shutil

    other = tmp_path / "my-run"
    shutil.copytree(tiny_checkpoint, other)
    window.model_panel.add_checkpoint(str(other))
    window.model_panel.checkpointChosen.emit(str(other))
    qtbot.waitUntil(lambda: window.model_status == "loaded" and window.checkpoint.path == other, timeout=60000)
    assert str(other) in window.model_panel.card.text()
    assert str(other) in window.settings.get("model/opened")
    assert window.model_panel.current_path() == str(other)
    # date and checkpoint filters of the browser
    window.library.add_take(np.zeros(1600, np.float32), {"checkpoint": "other-model", "name": "old"})
    window.library.add_take(np.zeros(1600, np.float32), {"checkpoint": "tiny-test", "name": "new"})
    window.browser.refresh()
    assert window.browser.checkpoint_filter.count() == 3  # all, other-model, tiny-test
    window.browser.checkpoint_filter.setCurrentIndex(window.browser.checkpoint_filter.findData("other-model"))
    assert [t.name for t in window.browser.visible_takes()] == ["old"]
    window.browser.checkpoint_filter.setCurrentIndex(0)
    window.browser.date_filter.setCurrentText("Today")
    assert len(window.browser.visible_takes()) == 2


def test_watchdog_option_rolls_back_a_runaway_and_says_so(qtbot, tmp_path):
    runaway = falls_silent(collapse_per_second=2.0)
    path = save_model(tmp_path / "falls-silent", runaway.config, runaway.params, {"name": "falls-silent"})
    window = make_window(qtbot, tmp_path, path)
    assert window.transport.watchdog_label.text() == ""
    assert window.controls.generation_settings().watchdog == WatchdogSettings()  # on by default
    take = generate(qtbot, window, seconds=4.0)
    assert take is not None and take.frames == 4 * 16000
    assert window.session is not None and window.session.generator.rollbacks
    window.refresh()
    assert "rollback" in window.transport.watchdog_label.text()
    # Live, what was played stays in the take; the watchdog cuts each runaway to about a window.
    audio, _ = sf.read(str(take.path), dtype="float32")
    assert longest_run(encode(audio), COLLAPSE) < 1.5 * 16000
    window.close()
    workers.wait_all()
