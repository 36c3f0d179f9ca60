"""The effects at the command line, as child processes (`engine.cli.SELF_COMMAND`):
`harmonic plugins scan|list`, `harmonic fx`, and --fx on `generate` and `play`, with real
plugins, a real crashing plugin (compiled here) and damaged bundles."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import child_env, error_line, run_harmonic
from effects_plugins import BUILTIN_REVERB, LV2_DELAY, VST3_REVERB, build_lv2, require_plugins

from engine.audio_file import read_audio
from engine.cli import SELF_COMMAND
from engine.effects import ChainSpec, PluginFormat, PluginRef, PluginSlot, render_chain

RATE = 16000
# The LV2 worker gain (tests/lv2/worker_gain.c): its gain port's value reaches it through the worker.
WORKER_GAIN = """
  lv2:requiredFeature <http://lv2plug.in/ns/ext/worker#schedule> ;
  lv2:extensionData <http://lv2plug.in/ns/ext/worker#interface> ;"""
GAIN_PORT = """ ,
           [ a lv2:ControlPort, lv2:InputPort ; lv2:index 2 ; lv2:symbol "gain" ; lv2:name "Gain" ;
             lv2:default 0.5 ; lv2:minimum 0.0 ; lv2:maximum 1.0 ]"""


@pytest.fixture(autouse=True)
def plugins():
    require_plugins()


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    """CPU JAX, and a compile cache, log folder and user cache for this module's children."""
    return child_env(tmp_path_factory.mktemp("fxcli"))


def one_line(proc: subprocess.CompletedProcess) -> str:
    """The one line a failed command ended with (exit 2, no traceback)."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    return error_line(proc)


def write_chain(path: Path, *slots: PluginSlot, rate: int = 16000) -> Path:
    ChainSpec(list(slots), rate).save(path)
    return path


def test_scan_lists_crashing_and_damaged_plugins_and_carries_on(env, tmp_path):
    """A plugin that crashes its host (SIGSEGV in instantiate), an LV2 bundle whose binary
    is text, and a .vst3 folder of garbage are listed with their reasons; the scan, and
    every real plugin after them, survive."""
    lv2_folder, vst3_folder = tmp_path / "lv2", tmp_path / "vst3"
    crash = build_lv2(lv2_folder, "a-crash", "urn:harmonic-test:crash", "crash")
    build_lv2(lv2_folder, "b-damaged", "urn:harmonic-test:damaged", None)
    garbage = vst3_folder / "Garbage.vst3" / "Contents" / "x86_64-linux"
    garbage.mkdir(parents=True)
    (garbage / "Garbage.so").write_bytes(os.urandom(4096))
    scan_env = {**env, "LV2_PATH": f"{lv2_folder}:/usr/lib/lv2", "VST3_PATH": str(vst3_folder)}
    proc = run_harmonic(scan_env, "plugins", "scan")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    failures = {
        line.split()[1].rstrip(":"): line
        for line in proc.stdout.split("failed to load:")[1].splitlines()
        if line.strip()
    }
    assert "crashed the scanner (SIGSEGV)" in failures[str(crash)], proc.stdout
    assert "its library does not load" in failures["urn:harmonic-test:damaged"], proc.stdout
    assert str(garbage.parent.parent) in failures, proc.stdout
    for name in ("Dragonfly Hall Reverb", "MDA Delay", "Reverb"):
        assert any(line.startswith(name) for line in proc.stdout.splitlines()), (name, proc.stdout)
    cached = run_harmonic(scan_env, "plugins", "list")  # from the cache: the same plugins, no child process
    assert cached.returncode == 0 and cached.stdout == proc.stdout.split("\n\n")[0] + "\n", cached.stdout


def test_an_lv2_plugin_gets_its_worker(env, tmp_path):
    """The worker gain (tests/lv2/worker_gain.c) outputs silence until its worker's
    response arrives: `harmonic fx` through it gives the input at its gain, 0.5."""
    lv2_folder = tmp_path / "lv2"
    build_lv2(lv2_folder, "worker-gain", "urn:harmonic-test:worker-gain", "worker_gain", WORKER_GAIN, GAIN_PORT)
    source = tmp_path / "in.wav"
    audio = np.random.default_rng(2).uniform(-0.5, 0.5, RATE).astype(np.float32)
    soundfile.write(source, audio, RATE, subtype="FLOAT")
    chain = write_chain(
        tmp_path / "chain.json", PluginSlot(PluginRef(PluginFormat.LV2, "urn:harmonic-test:worker-gain", "Worker gain"))
    )
    proc = run_harmonic({**env, "LV2_PATH": str(lv2_folder)}, "fx", chain, source, tmp_path / "out.wav", "--tail", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_allclose(soundfile.read(tmp_path / "out.wav", dtype="float32")[0], 0.5 * audio, atol=1e-6)


def test_list_params_and_unknown_names(env):
    proc = run_harmonic(env, "plugins", "list", "--params", "Dragonfly Hall Reverb")
    assert proc.returncode == 0, proc.stderr
    assert "(vst3," in proc.stdout and "(lv2," in proc.stdout  # both formats of it
    assert any(line.split()[:2] == ["decay_s", "float"] for line in proc.stdout.splitlines()), proc.stdout
    line = one_line(run_harmonic(env, "plugins", "list", "--params", "No Such Plugin"))
    assert "no plugin named 'No Such Plugin'" in line


def test_fx_processes_a_file_and_refuses_bad_chains_in_one_line(env, tmp_path):
    """`harmonic fx` writes what `render_chain` gives for the file at 16 kHz; a missing
    plugin, an unknown parameter, a bad file or a bad input is one line, and no output."""
    rng = np.random.default_rng(0)
    source = tmp_path / "in.flac"
    soundfile.write(source, rng.uniform(-0.3, 0.3, (RATE // 2, 2)), 44100)  # 0.5 s stereo at 44.1 kHz
    chain = write_chain(
        tmp_path / "chain.json",
        PluginSlot(BUILTIN_REVERB, {"room_size": 0.9}),
        PluginSlot(LV2_DELAY),
        PluginSlot(VST3_REVERB, {"decay_s": 2.0}, mix=0.5),
    )
    out = tmp_path / "out" / "wet.wav"
    out.parent.mkdir()
    proc = run_harmonic(env, "fx", chain, source, out, "--tail", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    written, rate = soundfile.read(out, dtype="float32")
    expected = render_chain(ChainSpec.load(chain), read_audio(source), tail_seconds=1.0)
    assert rate == RATE and written.shape == expected.shape == (len(read_audio(source)) + RATE,)
    np.testing.assert_allclose(written, np.clip(expected, -1, 1), atol=1e-5)
    bad = {
        "missing plugin": (
            write_chain(tmp_path / "gone.json", PluginSlot(PluginRef(PluginFormat.VST3, "/nowhere/Gone.vst3", "Gone"))),
            "no such VST3 bundle",
        ),
        "unknown parameter": (
            write_chain(tmp_path / "param.json", PluginSlot(BUILTIN_REVERB, {"size": 1.0})),
            "has no parameter 'size'",
        ),
        "not a chain": (tmp_path / "in.flac", "bad chain file: not JSON"),
    }
    for name, (chain_file, words) in bad.items():
        line = one_line(run_harmonic(env, "fx", chain_file, source, out.parent / "bad.wav"))
        assert words in line, (name, line)
    missing_input = one_line(run_harmonic(env, "fx", chain, tmp_path / "none.wav", out.parent / "bad.wav"))
    assert missing_input.endswith("none.wav: not found; check the path"), missing_input
    assert sorted(p.name for p in out.parent.iterdir()) == ["wet.wav"]


def test_generate_with_fx_writes_the_processed_and_the_dry_take(env, tmp_path):
    chain = write_chain(tmp_path / "chain.json", PluginSlot(BUILTIN_REVERB, {"room_size": 0.8}))
    out = tmp_path / "take.wav"
    proc = run_harmonic(
        env,
        "generate",
        "--preset",
        "tiny",
        "--seed",
        "3",
        "--seconds",
        "0.5",
        "--voices",
        "2",
        "--fx",
        chain,
        "--fx-tail",
        "0.5",
        "--out",
        out,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    wet, _ = soundfile.read(out, dtype="float32")
    dry, _ = soundfile.read(tmp_path / "take.dry.wav", dtype="float32")
    assert dry.shape == (RATE // 2, 2) and wet.shape == (RATE,)  # the voices' mix, and its tail
    expected = render_chain(ChainSpec.load(chain), dry.mean(axis=1), tail_seconds=0.5)
    np.testing.assert_allclose(wet, np.clip(expected, -1, 1), atol=1e-4)  # the dry take is 32-bit float: exact
    line = one_line(
        run_harmonic(
            env, "generate", "--preset", "tiny", "--fx", tmp_path / "nothing.json", "--out", tmp_path / "b.wav"
        )
    )
    assert "nothing.json: not found" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain.json", "take.dry.wav", "take.wav"]


def test_ctrl_c_keeps_both_takes(env, tmp_path):
    """Ctrl-C during `generate --fx` finishes the processed and the dry take with what was
    generated, and says so in one line."""
    chain = write_chain(tmp_path / "chain.json", PluginSlot(BUILTIN_REVERB, {"room_size": 0.8}))
    out = tmp_path / "take.wav"
    command = [*SELF_COMMAND, "generate", "--preset", "tiny", "--seconds", "600", "--fx", str(chain), "--out", str(out)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while sum(p.suffix == ".part" and p.stat().st_size > 16384 for p in tmp_path.iterdir()) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, "the take did not start"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    wet, _ = soundfile.read(out, dtype="float32")
    dry, _ = soundfile.read(tmp_path / "take.dry.wav", dtype="float32")
    line = [line for line in stderr.splitlines() if line.startswith("harmonic generate: stopped")]
    assert line == [
        f"harmonic generate: stopped; kept {len(wet) / RATE:.2f} s in {out}, "
        f"{len(dry) / RATE:.2f} s in {tmp_path / 'take.dry.wav'}"
    ], stderr[-3000:]
    assert 0 < len(wet) <= len(dry)
    np.testing.assert_allclose(
        wet, np.clip(render_chain(ChainSpec.load(chain), dry, 0.0)[: len(wet)], -1, 1), atol=1e-4
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain.json", "take.dry.wav", "take.wav"]


def test_play_with_fx_plays_the_processed_stream(pulse_server, env, tmp_path):
    """What `play --fx` sends to the speaker is the dry take through the chain."""
    import pulse

    chain = write_chain(tmp_path / "chain.json", PluginSlot(BUILTIN_REVERB, {"room_size": 0.7}))
    saved, raw = tmp_path / "played.wav", tmp_path / "speaker.raw"
    recorder = pulse_server.record_speaker(raw)
    time.sleep(0.5)
    try:
        proc = run_harmonic(
            {**env, **pulse_server.env},
            "play",
            "--preset",
            "tiny",
            "--seed",
            "4",
            "--seconds",
            "2",
            "--buffer",
            "1.5",
            "--prefill",
            "1.0",
            "--fx",
            chain,
            "--fx-tail",
            "1",
            "--save",
            saved,
        )
        time.sleep(0.5)
    finally:
        recorder.terminate()
        recorder.wait(10)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    played, _ = soundfile.read(saved, dtype="float32")
    dry, _ = soundfile.read(tmp_path / "played.dry.wav", dtype="float32")
    assert dry.shape == (2 * RATE,) and played.shape == (3 * RATE,)
    np.testing.assert_allclose(played, np.clip(render_chain(ChainSpec.load(chain), dry, 1.0), -1, 1), atol=1e-4)
    recorded = np.fromfile(raw, dtype="<f4")
    lag, correlation = pulse.align(played[800:], recorded)
    assert correlation > 0.99, (lag, correlation)
