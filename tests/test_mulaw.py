import numpy as np
import pytest

from engine import mulaw


def test_round_trip_within_half_a_step():
    x = np.random.default_rng(0).uniform(-1, 1, 200_000)
    q = mulaw.encode(x)
    assert q.dtype == np.int32 and q.min() >= 0 and q.max() <= 255
    c, c_decoded = mulaw.compand(x), mulaw.compand(mulaw.decode(q).astype(np.float64))
    step = np.where(c_decoded < 0, 1 / 128, 1 / 127)
    assert np.all(np.abs(c - c_decoded) <= step / 2 + 1e-6)


def test_every_class_decodes_and_reencodes_to_itself():
    q = np.arange(256)
    assert np.array_equal(mulaw.encode(mulaw.decode(q)), q)


def test_silence_and_extremes():
    assert mulaw.decode(np.array(128)) == 0.0
    assert mulaw.encode(np.zeros(3)).tolist() == [128, 128, 128]
    assert mulaw.decode(np.array([0, 255])).tolist() == [-1.0, 1.0]


def test_vectorised_over_shapes():
    x = np.linspace(-1, 1, 24).reshape(2, 3, 4)
    assert mulaw.encode(x).shape == (2, 3, 4)
    assert mulaw.decode(mulaw.encode(x)).shape == (2, 3, 4)


@pytest.mark.parametrize("bad", [np.array([0.0, 1.5]), np.array([-1.01]), np.array([np.nan]), np.array([np.inf])])
def test_out_of_range_or_non_finite_input_is_an_error(bad):
    with pytest.raises(ValueError, match="mu-law encode"):
        mulaw.encode(bad)


def test_decode_rejects_bad_classes():
    with pytest.raises(ValueError, match="0..255"):
        mulaw.decode(np.array([256]))


@pytest.mark.parametrize("mode", ["minmax", "peak", "none"])
def test_scale_lands_in_range(mode):
    x = np.random.default_rng(1).normal(0, 3, 1000)
    y = mulaw.scale(x, mode)
    assert y.min() >= -1 and y.max() <= 1
    if mode == "minmax":
        assert y.min() == -1 and y.max() == 1


def test_scale_constant_clip_is_silence():
    assert np.all(mulaw.scale(np.full(10, 0.3)) == 0)
