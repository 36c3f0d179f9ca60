"""The digit classifier learns a separable task, and survives a save/load round trip."""

import numpy as np
import pytest

from engine.checkpoint import CheckpointError
from training import digit_classifier as dc

TINY = dc.ClassifierConfig(mels=32, channels=(8, 16), blocks_per_stage=1)


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
    return dc.train_classifier(audio, labels, steps=150, batch_size=32, learning_rate=5e-3, config=TINY, log_every=0)


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
