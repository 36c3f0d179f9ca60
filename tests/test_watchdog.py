"""The runaway watchdog: the surprisal both backends output, the drift rules, and rollbacks on a
model built to fall into digital silence and stay there."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
import soundfile
from runaway_model import COLLAPSE, falls_silent, longest_run

from engine import cli, mulaw, sampling
from engine.checkpoint import ModelCheckpoint, save_model
from engine.fast_step import PackedModel
from engine.generator import Backend, GenerationSettings, Generator
from engine.sampling import NOISE_BLOCK
from engine.watchdog import Drift, TakeWatch, WatchdogSettings


@pytest.fixture(scope="module")
def silent_model() -> ModelCheckpoint:
    return falls_silent()


# ----- the statistic ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", [Backend.KERNEL, Backend.JAX])
def test_surprisal_is_the_models_own_surprise_at_each_sample(preset_params, backend):
    config, params = preset_params("tiny")
    settings = GenerationSettings(random_seed=2, voices=2, chunk_ms=20, temperature=0.8, watchdog=WatchdogSettings())
    generator = Generator(ModelCheckpoint(config, params, {}, path=None), settings, backend)
    generator.start()
    state = generator._state
    seeds = np.full(2, settings.random_seed)
    tokens, bits, _ = generator._run_chunk(state, 0, settings, seeds, surprisal=True)
    assert bits is not None and bits.shape == tokens.shape == (2, settings.chunk_samples)
    # The reference: teacher-force the same tokens and take -log2 softmax at temperature 1.
    packed = PackedModel.pack(params, config, bf16=backend is Backend.KERNEL)  # the arithmetic of the backend
    start = packed.start(2)
    first = start.logits.copy()  # feed advances the state in place
    logits = np.concatenate([first[None], packed.feed(start, np.array(tokens.T))[:-1]])  # [T, V, 256]
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    expected = -np.take_along_axis(np.asarray(log_probs), tokens.T[..., None], axis=-1)[..., 0] / np.log(2)
    np.testing.assert_allclose(bits, expected.T, atol=2e-3)


def test_stream_seeds_keep_stream_zero_and_differ_after():
    assert sampling.stream_seed(7, 0) == 7
    assert len({sampling.stream_seed(7, stream) for stream in range(1, 50)} | {7}) == 50
    per_voice = sampling.chunk_uniforms(np.array([5, sampling.stream_seed(5, 1)]), 3, 2, 2)
    np.testing.assert_array_equal(per_voice[:, 0], sampling.chunk_uniforms(5, 3, 2, 2)[:, 0])
    assert not np.array_equal(per_voice[:, 1], sampling.chunk_uniforms(5, 3, 2, 2)[:, 1])


# ----- the rules ----------------------------------------------------------------------------------


class Voices:
    """Stand-in states for `TakeWatch.check`: an int per voice, copied and restored."""

    def __init__(self, voices: int):
        self.state = list(range(voices))
        self.restored: list[tuple[int, object]] = []

    def copy(self, voice: int) -> object:
        return self.state[voice]

    def restore(self, voice: int, copy: object) -> None:
        self.restored.append((voice, copy))


def feed(watch: TakeWatch, voices: Voices, seconds: float, bits: float, level: float) -> list:
    """Feeds `seconds` of audio at `level` with surprisal `bits` to every voice in 0.1 s steps."""
    done = []
    for _ in range(round(seconds * 10)):
        n = mulaw.SAMPLE_RATE // 10
        audio = level * np.sin(np.arange(n) * 0.3)[None].repeat(len(voices.state), 0)
        watch.observe(audio.astype(np.float32), np.full(audio.shape, bits, np.float32))
        done += watch.check(voices.copy, voices.restore)
    return done


def test_drift_rules_tell_silence_and_noise_from_music_and_a_steady_tone():
    settings = WatchdogSettings()
    for bits, level, drift in [
        (4.5, 0.1, None),  # music
        (0.02, 0.0, Drift.SILENCE),  # digital silence
        (0.02, 0.3, None),  # a loud steady tone is easy to predict too, but it sounds
        (7.8, 0.5, Drift.NOISE),  # near a uniform guess over 256 classes
    ]:
        watch, voices = TakeWatch(settings, 1, 0), Voices(1)
        watch.begin(voices.copy)
        assert not feed(watch, voices, 0.9, bits, level)  # less than a window so far
        rollbacks = feed(watch, voices, 0.2, bits, level)
        assert [rollback.drift for rollback in rollbacks] == ([] if drift is None else [drift])


def test_retries_go_back_copy_by_copy_then_give_up_once():
    settings = WatchdogSettings(snapshots=2, retries=2)
    watch, voices = TakeWatch(settings, 2, 0), Voices(2)
    watch.begin(voices.copy)
    # Healthy: copies at 1 s and 2 s, kept at 1.5 s and 2.5 s (the start's dropped); the one at 3 s
    # is never confirmed.
    feed(watch, voices, 3.0, 4.5, 0.1)
    seeds_before = watch.seeds
    rollbacks = feed(watch, voices, 30.0, 0.02, 0.0)  # silent for good
    # Two retries from each of the two copies, voice by voice; then a notice each, and no more.
    assert [r.voice for r in rollbacks] == [0, 1] * 4
    assert all(r.drift is Drift.SILENCE for r in rollbacks)
    assert [r.kept for r in rollbacks[::2]] == [32000, 32000, 16000, 16000]
    assert len(watch.notices) == 2 and "voice 1 still runs into silence" in watch.notices[0]
    assert all(seed != before for seed, before in zip(watch.seeds, seeds_before, strict=True))
    assert watch.seeds[0] == sampling.stream_seed(0, 4)


# ----- the generator --------------------------------------------------------------------------------


@pytest.mark.parametrize(("backend", "seconds", "voices"), [(Backend.KERNEL, 12.0, 2), (Backend.JAX, 6.0, 2)])
def test_render_drops_the_runaway_and_keeps_the_take_reproducible(silent_model, backend, seconds, voices):
    plain = GenerationSettings(random_seed=1, voices=voices, chunk_ms=50)
    watched = dataclasses.replace(plain, watchdog=WatchdogSettings())
    without = mulaw.encode(Generator(silent_model, plain, backend).render(seconds))
    generator = Generator(silent_model, watched, backend)
    take = generator.render(seconds)
    assert take.shape == (voices, int(seconds * mulaw.SAMPLE_RATE))
    tokens = mulaw.encode(take)
    assert max(longest_run(voice, COLLAPSE) for voice in without) > 2 * mulaw.SAMPLE_RATE  # it falls silent
    assert max(longest_run(voice, COLLAPSE) for voice in tokens) < 0.3 * mulaw.SAMPLE_RATE  # not in the take
    assert generator.rollbacks and not generator.watchdog_notices
    # Until a voice's first rollback the take is the unwatched one, sample for sample.
    for voice in range(voices):
        first = min(r.kept for r in generator.rollbacks if r.voice == voice) if generator.rollbacks else None
        np.testing.assert_array_equal(tokens[voice, :first], without[voice, :first])
    again = Generator(silent_model, watched, backend).render(seconds)
    np.testing.assert_array_equal(again, take)


def test_watchdog_without_a_drift_changes_no_sample(preset_params):
    config, params = preset_params("tiny")
    checkpoint = ModelCheckpoint(config, params, {}, path=None)
    plain = GenerationSettings(random_seed=4, voices=2, chunk_ms=20, top_p=0.9)
    # Never a drift: a window's mean surprisal (~ the entropy) is never above 8 bits nor below 0.
    never = dataclasses.replace(plain, watchdog=WatchdogSettings(silence_bits=0.0, noise_bits=8.0))
    for backend in (Backend.KERNEL, Backend.JAX):
        np.testing.assert_array_equal(
            Generator(checkpoint, never, backend).render(0.5), Generator(checkpoint, plain, backend).render(0.5)
        )


def test_live_chunks_crossfade_from_the_last_sample_played(silent_model):
    settings = GenerationSettings(random_seed=1, voices=1, chunk_ms=50, watchdog=WatchdogSettings())
    generator = Generator(silent_model, settings)
    for _ in range(240):  # 12 s
        chunk = generator.next_chunk()
        if generator.last_rollbacks:
            break
    else:
        pytest.fail("no rollback in 12 s")
    last = chunk[0, -1]
    resumed = generator.next_chunk()
    assert resumed[0, 0] == pytest.approx(last, abs=1e-6)  # no jump where the voice went back
    assert resumed[0, NOISE_BLOCK] != pytest.approx(last)  # and then its resumed audio


def test_generate_command_with_watchdog(silent_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HARMONIC_COMPILE_CACHE", "off")
    path = save_model(tmp_path / "falls-silent", silent_model.config, silent_model.params, {"name": "falls-silent"})
    out = tmp_path / "take.flac"
    args = ["generate", "--checkpoint", str(path), "--seconds", "8", "--seed", "1", "--out", str(out), "--watchdog"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "watchdog on" in printed and "rollback(s) (" in printed and "from silence" in printed
    audio, rate = soundfile.read(out, dtype="float32")
    assert rate == mulaw.SAMPLE_RATE and audio.shape == (8 * rate,)
    assert longest_run(mulaw.encode(audio), COLLAPSE) < 0.3 * rate


def test_a_take_cut_short_keeps_what_the_watchdog_held_back(silent_model):
    settings = GenerationSettings(random_seed=1, voices=2, chunk_ms=50, watchdog=WatchdogSettings())
    generator = Generator(silent_model, settings)
    chunks = generator.settled_chunks()
    out = np.concatenate([next(chunks) for _ in range(3)], axis=1)
    held = generator.unsettled()
    assert held.shape[1] > 0  # the newest copies can still be rolled back to
    assert out.shape[1] + held.shape[1] == generator.kept_samples.min()  # together: the take so far
