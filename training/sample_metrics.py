"""Perceptual metrics for generated one-second digits (the SaShiMi / Mamba SC09 protocol).

All take a digit classifier's outputs on clips: `probs` [N, 10] class probabilities and
`features` [N, F] penultimate-layer activations.

- FID: Frechet distance between Gaussians fitted to the features of generated and of
  training clips (lower is better).
- IS: exp(E_x KL(p(y|x) || p(y))) over generated clips (higher is better; at most 10).
- modified IS (mIS): exp(E_{x, x'} KL(p(y|x) || p(y|x'))), which also rewards diversity
  within a class (higher is better).
- AM score: KL(p_train(y) || p_gen(y)) + E_x H(p(y|x)), the mismatch of the class
  marginals plus the classifier's uncertainty (lower is better).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

EPS = 1e-12


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two sets of features [N, F] and [M, F] (float64 internally)."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b)
    if not np.all(np.isfinite(covmean)):
        # Near-singular covariances (few clips): regularise as the reference FID code does.
        offset = np.eye(a.shape[1]) * 1e-6
        covmean = scipy.linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = covmean.real
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def _kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p_i || q_i) per row, with q broadcasting against p."""
    return np.sum(p * (np.log(p + EPS) - np.log(q + EPS)), axis=-1)


def inception_score(probs: np.ndarray) -> float:
    """IS of class probabilities [N, C]."""
    p = np.asarray(probs, np.float64)
    return float(np.exp(np.mean(_kl_rows(p, p.mean(0, keepdims=True)))))


def modified_inception_score(probs: np.ndarray) -> float:
    """mIS of class probabilities [N, C]: mean pairwise KL over all ordered pairs."""
    p = np.asarray(probs, np.float64)
    log_p = np.log(p + EPS)
    # KL(p_i || p_j) = sum p_i log p_i - sum p_i log p_j, for all i, j at once: [N, N].
    self_term = np.sum(p * log_p, axis=1, keepdims=True)
    pairwise = self_term - p @ log_p.T
    return float(np.exp(np.mean(pairwise)))


def am_score(probs: np.ndarray, train_probs: np.ndarray) -> float:
    """AM score of generated probabilities [N, C] against training-set probabilities [M, C]."""
    p = np.asarray(probs, np.float64)
    train_marginal = np.asarray(train_probs, np.float64).mean(0)
    entropy = -np.sum(p * np.log(p + EPS), axis=1).mean()
    return float(_kl_rows(train_marginal, p.mean(0)) + entropy)


def all_metrics(probs, features, train_probs, train_features) -> dict[str, float]:
    """The four metrics of one set of clips against the training set."""
    return {
        "FID": frechet_distance(features, train_features),
        "IS": inception_score(probs),
        "mIS": modified_inception_score(probs),
        "AM": am_score(probs, train_probs),
    }
