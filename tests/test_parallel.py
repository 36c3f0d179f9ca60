"""Context parallelism (docs/spec.md §7): sharded loss AND gradients equal the single-device ones.

Runs in a subprocess with 8 host CPU devices: XLA_FLAGS must be set before jax is
imported, and other tests in this pytest process have imported it already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax, jax.numpy as jnp, numpy as np
    from engine import model
    from training.input_noise import corrupt
    from training.loss import masked_nll_bits, mean_loss
    from training.mesh import make_mesh

    def single_device_loss(params, config, tokens, mask, inputs=None):
        total, count = masked_nll_bits(params, config, tokens, mask, inputs=inputs)
        return total / count

    config = model.preset("tiny")
    params = model.init_params(config, jax.random.key(0))
    length = 8 * config.total_pooling          # a multiple of 8 x the pooling product
    tokens = jax.random.randint(jax.random.key(1), (2, length), 0, 256)
    mask = np.ones((2, length), np.float32)
    mask[1, length - 13:] = 0                  # a padded clip
    # Inputs corrupted against clean targets (training/input_noise.py) take the same path.
    # The inputs are an argument (the tokens themselves when clean, as inputs=None means),
    # so one compiled function per mesh serves both: compiling is most of this test's time.
    inputs = corrupt(tokens, jax.random.key(2), 0.3, 4)
    single = jax.jit(jax.value_and_grad(single_device_loss), static_argnums=1)
    ref_loss, ref_grads = single(params, config, tokens, mask, tokens)
    noisy_loss, noisy_grads = single(params, config, tokens, mask, inputs)
    out = {"devices": len(jax.devices()), "noise_changes_loss": abs(float(noisy_loss) - float(ref_loss))}
    for data, seq in [(1, 8), (2, 4)]:
        mesh = make_mesh(data, seq)
        sharded = jax.jit(jax.value_and_grad(mean_loss), static_argnums=(1, 4, 6))
        for noisy in (False, True):
            loss, grads = sharded(params, config, tokens, mask, mesh, None, False, inputs if noisy else tokens)
            expected_loss, expected_grads = (noisy_loss, noisy_grads) if noisy else (ref_loss, ref_grads)
            rel = jax.tree.leaves(jax.tree.map(
                lambda a, b: float(jnp.linalg.norm(a - b) / (jnp.linalg.norm(b) + 1e-30)), grads, expected_grads))
            out[f"{data}x{seq}" + ("-noisy" if noisy else "")] = {
                "loss_rel": abs(float(loss) - float(expected_loss)) / abs(float(expected_loss)),
                "grad_rel_max": max(rel),
                "grad_nonzero": float(sum(jnp.abs(g).sum() for g in jax.tree.leaves(grads))),
            }
    print("RESULT " + json.dumps(out))
    """
)


def test_sharded_loss_and_grads_match_single_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [out for out in proc.stdout.splitlines() if out.startswith("RESULT ")][-1]
    out = json.loads(line[len("RESULT ") :])
    assert out["devices"] == 8
    for name in ("1x8", "1x8-noisy", "2x4", "2x4-noisy"):
        assert out[name]["loss_rel"] < 1e-5, (name, out)
        assert out[name]["grad_rel_max"] < 1e-5, (name, out)
    assert out["1x8"]["grad_nonzero"] > 0 and out["noise_changes_loss"] > 1e-4
