"""The effects chain on real plugins: pedalboard's built-in reverb, Debian's Dragonfly
reverb as VST3 and LV2, MDA's delay and SWH's wave shaper (LV2)."""

from __future__ import annotations

import numpy as np
import pytest
from effects_plugins import (
    BUILTIN_REVERB,
    LV2_DELAY,
    LV2_LIMITER,
    LV2_REVERB,
    LV2_SHAPER,
    VST3_REVERB,
    require_plugins,
)

from engine.audio import Stage
from engine.effects import ChainSpec, EffectsChain, PluginFormat, PluginRef, PluginSlot, describe, render_chain
from engine.errors import UserError

RATE = 16000
BLOCK = 160  # 10 ms, the app's smallest
# A parameter of each reverb and two values that sound different.
REVERBS = {
    "builtin": (BUILTIN_REVERB, "room_size", 0.3, 0.95),
    "vst3": (VST3_REVERB, "decay_s", 0.5, 6.0),
    "lv2": (LV2_REVERB, "decay", 0.5, 6.0),
}


@pytest.fixture(autouse=True)
def plugins():
    require_plugins()


def burst(seconds: float = 0.5, sound: float = 0.2) -> np.ndarray:
    """`sound` seconds of noise, then silence: float32 [seconds x 16 kHz]."""
    audio = np.zeros(int(seconds * RATE), np.float32)
    audio[: int(sound * RATE)] = np.random.default_rng(1).uniform(-0.5, 0.5, int(sound * RATE))
    return audio


def in_blocks(chain: EffectsChain, audio: np.ndarray, block: int) -> np.ndarray:
    return np.concatenate([chain.process(audio[i : i + block]) for i in range(0, len(audio), block)])


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


@pytest.mark.parametrize("kind", REVERBS)
def test_reverb_tail_continues_across_blocks_and_after_the_input(kind):
    """10 ms blocks give what one block gives (no tail cut at block edges), and the chain
    rings on, decaying, after the input stops. (Both chains are warmed alike: Dragonfly's
    modulation runs during the warm-up block, whose length is the longest block's.)"""
    ref, *_ = REVERBS[kind]
    spec = ChainSpec([PluginSlot(ref)])
    audio = burst()
    with EffectsChain(spec, max_block=len(audio)) as blocks, EffectsChain(spec, max_block=len(audio)) as whole:
        by_block, tail = in_blocks(blocks, audio, BLOCK), blocks.tail(1.0)
        at_once, whole_tail = whole.process(audio), whole.tail(1.0)
    np.testing.assert_allclose(by_block, at_once, atol=1e-4)
    np.testing.assert_allclose(tail, whole_tail, atol=1e-4)
    silence_part = by_block[int(0.2 * RATE) :]  # after the burst: the reverb alone
    assert rms(silence_part) > 1e-3, rms(silence_part)
    assert rms(tail[:1600]) > 1e-4 and rms(tail[-1600:]) < rms(tail[:1600]) / 2, (rms(tail[:1600]), rms(tail[-1600:]))


@pytest.mark.parametrize("kind", REVERBS)
def test_a_parameter_change_changes_the_output(kind):
    ref, name, low, high = REVERBS[kind]
    audio = burst()
    outputs = []
    for value in (low, high):
        with EffectsChain(ChainSpec([PluginSlot(ref, {name: value})]), max_block=BLOCK) as chain:
            outputs.append(in_blocks(chain, audio, BLOCK))
    assert rms(outputs[1][4000:] - outputs[0][4000:]) > 1e-3
    with EffectsChain(ChainSpec([PluginSlot(ref, {name: low})]), max_block=BLOCK) as chain:  # set while running
        first = in_blocks(chain, audio[:1600], BLOCK)
        chain.set_parameter(0, name, high)
        assert chain.snapshot().slots[0].parameters[name] == pytest.approx(high, rel=1e-3)
        changed = np.concatenate([first, in_blocks(chain, audio[1600:], BLOCK)])
    np.testing.assert_allclose(changed[:1600], outputs[0][:1600], atol=1e-5)
    assert rms(changed[4000:] - outputs[0][4000:]) > 1e-3


def test_bypass_and_mix_and_the_running_measures():
    audio = burst()
    with EffectsChain(ChainSpec([PluginSlot(BUILTIN_REVERB, {"room_size": 0.9})]), max_block=BLOCK) as chain:
        wet = in_blocks(chain, audio[:1600], BLOCK)
        assert chain.cost_ms > 0 and chain.block_seconds == pytest.approx(BLOCK / RATE)
        chain.set_bypass(0, True)
        np.testing.assert_array_equal(in_blocks(chain, audio[1600:3200], BLOCK), audio[1600:3200])
        chain.set_bypass(0, False)
        chain.set_mix(0, 0.0)
        np.testing.assert_allclose(in_blocks(chain, audio[3200:4800], BLOCK), audio[3200:4800], atol=1e-7)
        with pytest.raises(UserError, match="mix must be in"):
            chain.set_mix(0, 1.5)
    assert rms(wet - audio[:1600]) > 1e-2


def test_a_preset_round_trips(tmp_path):
    """Saved (with the VST3 and LV2 states, base64) and loaded, a chain sounds the same."""
    spec = ChainSpec(
        [
            PluginSlot(VST3_REVERB, {"decay_s": 2.5, "dry_level": 50.0}),
            PluginSlot(LV2_REVERB, {"decay": 3.0}, mix=0.4),
            PluginSlot(LV2_DELAY, {"feedback": 0.6}),
            PluginSlot(BUILTIN_REVERB, {"room_size": 0.8}, bypass=True),
        ]
    )
    audio = burst()
    with EffectsChain(spec, max_block=BLOCK) as chain:
        chain.set_parameter(2, "l_delay", 0.3)
        chain.set_mix(0, 0.7)
        saved = chain.snapshot()
        expected = in_blocks(chain, audio, BLOCK)
    assert saved.slots[0].state and saved.slots[1].state  # both Dragonflies keep their own state
    saved.save(tmp_path / "chain.json")
    loaded = ChainSpec.load(tmp_path / "chain.json")
    assert loaded == saved
    with EffectsChain(loaded, max_block=BLOCK) as chain:
        np.testing.assert_allclose(in_blocks(chain, audio, BLOCK), expected, atol=1e-5)
    assert not list(tmp_path.glob(".*part"))


def test_a_plugin_sending_nan_is_muted_with_a_notice():
    """SWH's wave shaper at its lowest shape sends samples of 1e22 and then NaN: its slot
    is passed by from its first block on, the output stays finite and equals the chain
    without it, and the user is told once."""
    gain = PluginRef(PluginFormat.BUILTIN, "Gain", "Gain")
    audio = burst()
    with EffectsChain(
        ChainSpec(
            [
                PluginSlot(gain, {"gain_db": -6.0}),
                PluginSlot(LV2_SHAPER, {"shapep": -10.0}),
                PluginSlot(gain, {"gain_db": 3.0}),
            ]
        ),
        max_block=BLOCK,
    ) as chain:
        out = in_blocks(chain, audio, BLOCK)
        assert chain.muted == [False, True, False]
        notices = chain.drain_notices()
        assert len(notices) == 1, notices
        assert notices[0].startswith("Wave shaper (slot 2) sent ") and notices[0].endswith(": muted"), notices
        assert chain.drain_notices() == []
    with EffectsChain(ChainSpec([PluginSlot(gain, {"gain_db": -3.0})]), max_block=BLOCK) as without:
        np.testing.assert_allclose(out, in_blocks(without, audio, BLOCK), atol=1e-6)
    assert np.isfinite(out).all()


def test_nan_in_the_input_becomes_silence_and_no_plugin_is_blamed():
    audio = burst()
    audio[[1000, 1001]] = np.nan, np.inf
    with EffectsChain(ChainSpec([PluginSlot(BUILTIN_REVERB)]), max_block=len(audio)) as chain:
        out = chain.process(audio)
        assert chain.drain_notices() == ["the chain's input held NaN or Inf: replaced by silence"]
        assert chain.muted == [False]
    audio[[1000, 1001]] = 0
    with EffectsChain(ChainSpec([PluginSlot(BUILTIN_REVERB)]), max_block=len(audio)) as chain:
        np.testing.assert_array_equal(out, chain.process(audio))


def test_stereo_plugins_take_mono_and_the_48k_mode_keeps_its_latency():
    """The stereo-only Dragonfly VST3 runs on the mono stream; at 48 kHz an impulse through
    a transparent chain comes out exactly `latency_samples` late, whatever the block size."""
    with EffectsChain(ChainSpec([PluginSlot(VST3_REVERB)]), max_block=BLOCK) as chain:
        out = in_blocks(chain, burst(), BLOCK)
    assert out.ndim == 1 and np.isfinite(out).all() and rms(out) > 1e-2
    impulse = np.zeros(RATE, np.float32)
    impulse[3000] = 1.0
    spec = ChainSpec([PluginSlot(PluginRef(PluginFormat.BUILTIN, "Gain", "Gain"), {"gain_db": 0.0})], rate=48000)
    for block in (64, 1000):
        with EffectsChain(spec, max_block=1000) as chain:
            out = in_blocks(chain, impulse, block)
            assert len(out) == len(impulse)
            assert np.argmax(np.abs(out)) == 3000 + chain.latency_samples > 3000
    rendered = render_chain(spec, impulse, tail_seconds=0.5)
    assert len(rendered) == len(impulse) + RATE // 2 and np.argmax(np.abs(rendered)) == 3000


def test_the_live_and_the_aligned_stage_are_one_stream_the_chains_delay_apart():
    """`Stage.process` (the app, live) and `Stage.aligned` (--fx, `harmonic fx`, re-rendered
    takes) run the one take tap -> mix-down -> chain step: the aligned stream is the live
    one with the chain's delay cut and its ring-out appended; both taps get every chunk."""
    rng = np.random.default_rng(2)
    chunks = [rng.uniform(-0.5, 0.5, (2, n)).astype(np.float32) for n in (800, 5000, 3, 4096)]
    frames = sum(chunk.shape[1] for chunk in chunks)
    spec = ChainSpec([PluginSlot(BUILTIN_REVERB, {"room_size": 0.8})], rate=48000)  # 48 kHz: a delay to cut
    live_taps: list[np.ndarray] = []
    aligned_taps: list[np.ndarray] = []
    with EffectsChain(spec) as live_chain, EffectsChain(spec) as aligned_chain:
        stage = Stage(live_chain, on_chunk=live_taps.append)
        live = np.concatenate([stage.process(chunk) for chunk in chunks] + [live_chain.tail(1.0)])
        delay = live_chain.latency_samples
        aligned = np.concatenate(list(Stage(aligned_chain, on_chunk=aligned_taps.append).aligned(chunks, 0.5)))
    assert delay > 0 and len(aligned) == frames + RATE // 2
    np.testing.assert_allclose(aligned, live[delay : delay + len(aligned)], atol=1e-6)
    assert rms(aligned[frames:]) > 1e-3  # the reverb rings on
    np.testing.assert_array_equal(stage.program.latest(frames), live[:frames])  # live feeds the program tap
    assert all(a is b is c for a, b, c in zip(live_taps, aligned_taps, chunks, strict=True))


def test_a_mix_delays_the_dry_signal_by_the_plugins_latency():
    """SWH's lookahead limiter reports 80 samples of delay; below its limit it is a pure
    delay. At 50% dry/wet an impulse must come out once, whole, 80 samples late (not twice at
    half height, 80 samples apart: a comb filter), also in blocks shorter than the delay."""
    impulse = np.zeros(RATE // 2, np.float32)
    impulse[3000] = 0.5
    spec = ChainSpec([PluginSlot(LV2_LIMITER, mix=0.5)])
    for block in (64, 1000):
        with EffectsChain(spec, max_block=1000) as chain:
            assert chain.slot_latency == [80] and chain.latency_samples == 80
            out = in_blocks(chain, impulse, block)
        np.testing.assert_allclose(out, np.roll(impulse, 80), atol=1e-4)
    rendered = render_chain(spec, impulse, tail_seconds=0.1)
    np.testing.assert_allclose(rendered[: len(impulse)], impulse, atol=1e-4)


def test_plugins_list_their_parameters():
    for ref, name, unit in ((VST3_REVERB, "decay_s", "s"), (LV2_REVERB, "decay", "s"), (LV2_DELAY, "feedback", "")):
        info = describe(ref)
        parameter = info.parameter(name)
        assert parameter.unit == unit and parameter.minimum < parameter.maximum, parameter
        assert info.ref.name == ref.name


@pytest.mark.parametrize(
    "slot, words",
    [
        (PluginSlot(BUILTIN_REVERB, {"room_size": 3.0}), "room_size = 3 is outside 0..1"),
        (
            PluginSlot(BUILTIN_REVERB, {"loudness": 1.0}),
            "Reverb has no parameter 'loudness'; its parameters: room_size",
        ),
        (PluginSlot(LV2_REVERB, {"decay": "long"}), "decay takes a number"),
        (PluginSlot(PluginRef(PluginFormat.BUILTIN, "Flanger", "Flanger")), "no built-in effect 'Flanger'"),
        (
            PluginSlot(PluginRef(PluginFormat.VST3, "/nowhere/Gone.vst3", "Gone")),
            "/nowhere/Gone.vst3: no such VST3 bundle",
        ),
        (PluginSlot(PluginRef(PluginFormat.LV2, "urn:nowhere:gone", "Gone")), "urn:nowhere:gone: no such LV2 plugin"),
    ],
)
def test_bad_slots_are_one_line(slot, words):
    with pytest.raises(UserError, match=None) as raised:
        EffectsChain(ChainSpec([slot]))
    assert words in str(raised.value) and "\n" not in str(raised.value), raised.value


@pytest.mark.parametrize(
    "text, words",
    [
        ("{", "not JSON"),
        ('{"slots": {}}', 'expected an object with a "slots" list'),
        ('{"slots": [], "rate": 44100}', "rate must be one of 16000, 48000"),
        ('{"slots": [{"format": "vst2", "id": "x"}]}', "slot 1: format must be one of builtin, vst3, lv2"),
        ('{"slots": [{"format": "builtin", "id": "Reverb", "mix": 2}]}', "slot 1: mix must be a number in [0, 1]"),
        ('{"slots": [{"format": "lv2", "id": "urn:x", "state": "%%%"}]}', "slot 1: state is not base64"),
    ],
)
def test_bad_chain_files_are_one_line(tmp_path, text, words):
    path = tmp_path / "chain.json"
    path.write_text(text)
    with pytest.raises(UserError) as raised:
        ChainSpec.load(path)
    assert words in str(raised.value) and str(path) in str(raised.value), raised.value
