"""The SC09 sample metrics on cases whose values are known."""

import numpy as np
import pytest

from training import sample_metrics as m


def one_hot(labels, classes=10, sharp=1.0):
    p = np.full((len(labels), classes), (1 - sharp) / (classes - 1))
    p[np.arange(len(labels)), labels] = sharp
    return p


def test_perfectly_confident_balanced_classes_reach_the_maxima():
    probs = one_hot(np.repeat(np.arange(10), 20))
    assert m.inception_score(probs) == pytest.approx(10, rel=1e-6)
    assert m.am_score(probs, probs) == pytest.approx(0, abs=1e-6)


def test_one_class_only_scores_one():
    probs = one_hot(np.zeros(50, int))
    assert m.inception_score(probs) == pytest.approx(1, rel=1e-6)
    assert m.modified_inception_score(probs) == pytest.approx(1, rel=1e-6)
    # The AM score punishes the collapsed marginal: KL(uniform || one class) is large.
    assert m.am_score(probs, one_hot(np.arange(10))) > 10


def test_uncertain_classifier_raises_am_and_lowers_is():
    sharp = one_hot(np.repeat(np.arange(10), 10), sharp=0.99)
    vague = one_hot(np.repeat(np.arange(10), 10), sharp=0.5)
    assert m.inception_score(vague) < m.inception_score(sharp)
    assert m.am_score(vague, sharp) > m.am_score(sharp, sharp)


def test_modified_is_matches_the_pairwise_definition():
    probs = np.random.default_rng(0).dirichlet(np.ones(10), size=30)
    pairs = [np.sum(p * np.log(p / q)) for p in probs for q in probs]
    assert m.modified_inception_score(probs) == pytest.approx(np.exp(np.mean(pairs)), rel=1e-9)


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, (20_000, 4))
    assert m.frechet_distance(a, rng.normal(0, 1, (20_000, 4))) < 0.01
    # Shifted mean by 2 in every dimension: FID -> 4 * 2^2 = 16.
    assert m.frechet_distance(a, rng.normal(2, 1, (20_000, 4))) == pytest.approx(16, rel=0.02)
    # Scaled by 2: trace terms 4 + 16 - 2 * 8 = 4.
    assert m.frechet_distance(a, rng.normal(0, 2, (20_000, 4))) == pytest.approx(4, rel=0.05)
