"""The digit classifier learns a separable task, and survives a save/load round trip; its training
augmentation changes every clip, each step as documented, the same way for the same key, and never at evaluation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from engine.checkpoint import CheckpointError
from engine.errors import UserError
from training import digit_classifier as dc
from training.digit_augment import AugmentConfig, augment_audio, spec_mask
from training.sample_commands import parse_augment

TINY = dc.ClassifierConfig(mels=32, channels=(8, 16), blocks_per_stage=1)
# The tones' pitch is their label: a change of speed (pitch) would move them into other classes.
TONE_AUGMENT = dataclasses.replace(AugmentConfig(), speed_range=0.0)


def tones(n, seed):
    """Ten classes: a tone at 200 + 150 k Hz, of length 0.5 + 0.04 k s, with noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(16_000) / 16_000
    labels = rng.integers(0, 10, n)
    audio = np.stack(
        [0.5 * np.sin(2 * np.pi * (200 + 150 * k) * t + rng.uniform(0, 6)) * (t < 0.5 + 0.04 * k) for k in labels]
    )
    return (audio + 0.05 * rng.normal(size=audio.shape)).astype(np.float32), labels


@pytest.fixture(scope="module")
def trained():
    audio, labels = tones(300, seed=0)
    return dc.train_classifier(
        audio, labels, steps=150, batch_size=32, learning_rate=5e-3, config=TINY, augmentation=TONE_AUGMENT, log_every=0
    )


def test_learns_held_out_clips(trained):
    audio, labels = tones(100, seed=1)
    assert trained.accuracy(audio, labels) > 0.6  # chance is 0.1; the tiny net is short-trained
    probs, features = trained.outputs(audio)
    assert probs.shape == (100, 10) and features.shape == (100, 16)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)


def test_save_load_round_trip(trained, tmp_path):
    dc.save_classifier(tmp_path / "clf", trained)
    loaded = dc.load_classifier(tmp_path / "clf")
    audio, _ = tones(8, seed=2)
    np.testing.assert_allclose(loaded.outputs(audio)[0], trained.outputs(audio)[0], rtol=1e-5, atol=1e-6)
    assert loaded.config == TINY


def test_mel_filterbank_covers_the_band():
    bank = dc.mel_filterbank(dc.ClassifierConfig())
    assert bank.shape == (257, 64) and np.all(bank.max(0) > 0.4)  # the lowest bands are narrower than one FFT bin


def test_not_a_classifier_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="digit classifier"):
        dc.load_classifier(tmp_path)


def spoken_like(n, seed):
    """[n, 16000] tones from 0.3 s to 0.6 s in digital silence, a crude stand-in for centred words."""
    rng = np.random.default_rng(seed)
    t = np.arange(16_000) / 16_000
    envelope = (t >= 0.3) & (t < 0.6)
    return np.stack([envelope * np.sin(2 * np.pi * rng.uniform(100, 300) * t) for _ in range(n)]).astype(np.float32)


NEUTRAL = AugmentConfig(
    shift_seconds=0.0,
    min_gain_db=0.0,
    speed_range=0.0,
    room_probability=0.0,
    noise_probability=0.0,
    time_masks=0,
    freq_masks=0,
)


def test_augmentation_varies_each_clip_and_is_fixed_by_its_key():
    audio = jnp.asarray(spoken_like(6, seed=0))
    first = np.asarray(augment_audio(jax.random.key(0), audio, AugmentConfig()))
    assert first.shape == audio.shape and np.all(np.isfinite(first))
    assert np.all(np.abs(first - np.asarray(audio)).max(axis=1) > 0.01)  # every clip changed
    np.testing.assert_array_equal(first, np.asarray(augment_audio(jax.random.key(0), audio, AugmentConfig())))
    assert not np.allclose(first, np.asarray(augment_audio(jax.random.key(1), audio, AugmentConfig())))


def test_neutral_augmentation_is_the_identity():
    audio = jnp.asarray(spoken_like(3, seed=1))
    np.testing.assert_allclose(np.asarray(augment_audio(jax.random.key(0), audio, NEUTRAL)), audio, atol=1e-6)
    assert np.all(np.asarray(spec_mask(jax.random.key(0), 3, 98, 64, NEUTRAL)) == 1)


def test_each_step_does_what_it_says():
    audio = jnp.asarray(spoken_like(64, seed=2))
    clean = np.asarray(audio)
    noisy = np.asarray(augment_audio(jax.random.key(0), audio, dataclasses.replace(NEUTRAL, noise_probability=1.0)))
    snr_db = 10 * np.log10(np.mean(clean**2, axis=1) / np.mean((noisy - clean) ** 2, axis=1))
    assert np.all((snr_db > NEUTRAL.min_snr_db - 0.5) & (snr_db < 40.5)) and snr_db.std() > 3
    room = np.asarray(augment_audio(jax.random.key(0), audio, dataclasses.replace(NEUTRAL, room_probability=1.0)))
    np.testing.assert_allclose(room.std(axis=1), clean.std(axis=1), rtol=1e-3)  # level kept, sound smeared
    after = slice(int(0.61 * 16_000), int(0.7 * 16_000))  # silent before the room, its echo after
    assert np.all(clean[:, after] == 0) and np.all(np.abs(room[:, after]).max(axis=1) > 1e-3)
    quiet = np.asarray(augment_audio(jax.random.key(0), audio, dataclasses.replace(NEUTRAL, min_gain_db=-20.0)))
    gain_db = 20 * np.log10(np.abs(quiet).max(axis=1) / np.abs(clean).max(axis=1))
    assert np.all((gain_db > -20.01) & (gain_db < 0.01)) and gain_db.min() < -10
    mask = np.asarray(spec_mask(jax.random.key(0), 64, 98, 64, AugmentConfig()))
    assert mask.shape == (64, 98, 64) and set(np.unique(mask)) <= {0.0, 1.0} and 0.5 < mask.mean() < 1


def test_evaluation_is_not_augmented(trained):
    audio, _ = tones(4, seed=3)
    logits, _ = dc.DigitClassifier(TINY).apply({"params": trained.params}, jnp.asarray(audio))
    np.testing.assert_allclose(trained.outputs(audio)[0], jax.nn.softmax(logits), rtol=1e-5, atol=1e-6)
    assert trained.card["augment"] == dataclasses.asdict(TONE_AUGMENT)


def test_augment_flag_names_a_bad_field():
    assert parse_augment(["speed_range=0", "time_masks=3"]) == dataclasses.replace(
        AugmentConfig(), speed_range=0.0, time_masks=3
    )
    with pytest.raises(UserError, match="shift_seconds"):
        parse_augment(["speed=0.1"])
    with pytest.raises(UserError, match="not of type int"):
        parse_augment(["time_masks=two"])
