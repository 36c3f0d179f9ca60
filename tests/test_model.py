"""The functional model API: parallel and stepwise forms compute the same function."""

import json

import jax
import jax.numpy as jnp
import jaxtyping
import numpy as np
import pytest

from engine import model, sampling
from engine.config import ModelConfig


def random_tokens(batch, length, seed=1):
    return jax.random.randint(jax.random.key(seed), (batch, length), 0, 256, jnp.int32)


def stepwise_logits(params, config, tokens):
    """Logits from `step` fed START_TOKEN, tokens[:, 0], ... inside one compiled scan."""

    @jax.jit
    def run(params, tokens):
        inputs = jnp.concatenate([jnp.full((tokens.shape[0], 1), model.START_TOKEN), tokens[:, :-1]], 1)

        def body(state, token):
            logits, state = model.step(params, config, state, token)
            return state, logits

        _, logits = jax.lax.scan(body, model.init_state(params, config, tokens.shape[0]), inputs.T)
        return jnp.swapaxes(logits, 0, 1)

    return run(params, tokens)


@pytest.mark.parametrize("name", ["tiny", "realtime"])
def test_step_matches_forward(name, preset_params):
    config, params = preset_params(name)
    length = 2 * config.total_pooling + 3
    assert length % config.total_pooling
    tokens = random_tokens(2, length)
    parallel = model.forward(params, config, tokens)
    assert parallel.shape == (2, length, 256) and parallel.dtype == jnp.float32
    stepwise = stepwise_logits(params, config, tokens)
    assert float(jnp.max(jnp.abs(parallel - stepwise))) < 1e-4


@pytest.mark.parametrize("name", ["tiny", "realtime"])
def test_prefill_every_prefix_length_then_step(name, preset_params):
    config, params = preset_params(name)
    tokens = random_tokens(2, config.total_pooling + 2, seed=3)
    # Host copies: eager slicing of device arrays would compile once per length.
    parallel = np.asarray(model.forward(params, config, tokens))
    tokens = np.asarray(tokens)
    worst = 0.0
    for length in range(1, config.total_pooling + 1):
        logits, state = model.prefill(params, config, tokens[:, :length])
        worst = max(worst, np.max(np.abs(np.asarray(logits) - parallel[:, length])))
        logits, state = model.step(params, config, state, tokens[:, length])
        worst = max(worst, np.max(np.abs(np.asarray(logits) - parallel[:, length + 1])))
    assert worst < 1e-4


@pytest.mark.parametrize("length", [5, 15, 37, 50])
def test_chunked_prefill_matches_forward_and_one_chunk(length, preset_params):
    # Chunks of 16 steps (twice tiny's pooling product 8); the seed plus START_TOKEN is
    # shorter than one chunk, exactly one, and several with a partial last chunk.
    config, params = preset_params("tiny")
    tokens = np.asarray(random_tokens(2, length + 2, seed=5))
    parallel = np.asarray(model.forward(params, config, tokens))
    seen = []
    logits, state = model.prefill(
        params, config, tokens[:, :length], lambda done, total: seen.append((done, total)), max_steps=16
    )
    assert seen[-1] == (length + 1, length + 1) and len(seen) == -(-(length + 1) // 16)
    np.testing.assert_allclose(np.asarray(logits), parallel[:, length], atol=1e-5)
    one_logits, one_state = model.prefill(params, config, tokens[:, :length])
    np.testing.assert_allclose(np.asarray(logits), np.asarray(one_logits), atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5), state, one_state)
    logits, _ = model.step(params, config, state, tokens[:, length])
    np.testing.assert_allclose(np.asarray(logits), parallel[:, length + 1], atol=1e-5)


def test_prefill_of_nothing_is_the_initial_state(preset_params):
    config, params = preset_params("tiny")
    logits, _ = model.prefill(params, config, jnp.zeros((1, 0), jnp.int32))
    expected, _ = model.step(params, config, model.init_state(params, config, 1), jnp.full((1,), model.START_TOKEN))
    assert float(jnp.max(jnp.abs(logits - expected))) < 1e-5


@pytest.mark.parametrize("name", ["tiny", "realtime"])
def test_causality(name, preset_params):
    config, params = preset_params(name)
    length = 2 * config.total_pooling + 5
    tokens = random_tokens(1, length, seed=4)
    base = np.asarray(model.forward(params, config, tokens))
    for t in [0, config.total_pooling - 1, length // 2, length - 2]:
        changed = tokens.at[0, t].set((tokens[0, t] + 97) % 256)
        other = np.asarray(model.forward(params, config, changed))
        np.testing.assert_array_equal(other[:, : t + 1], base[:, : t + 1])
        assert np.max(np.abs(other[:, t + 1 :] - base[:, t + 1 :])) > 1e-6


def test_any_length_works(preset_params):
    config, params = preset_params("tiny")
    for length in [1, 2, 5, config.total_pooling + 1]:
        assert model.forward(params, config, random_tokens(1, length)).shape == (1, length, 256)


def test_paper_preset_size():
    config = model.preset("paper")
    assert 7_200_000 <= model.count_params(model.param_shapes(config)) <= 7_500_000
    assert config.total_pooling == 160


def test_realtime_preset_is_thin_at_full_rate():
    config = model.preset("realtime")
    shapes = model.param_shapes(config)
    # docs/spec.md §8: ~0.5M float32 parameters per sample is about real time on a 2-core CPU.
    assert model.full_rate_equivalent(shapes, config) < 150_000
    assert model.count_params(shapes) > 10 * model.full_rate_equivalent(shapes, config)


def test_level_counts_add_up():
    config = model.preset("paper")
    shapes = model.param_shapes(config)
    assert sum(model.level_param_counts(shapes, config)) == model.count_params(shapes)


def test_dropout_only_with_a_key(preset_params):
    config, params = preset_params("tiny")
    config = config.replace(dropout=0.5)
    tokens = random_tokens(1, 16)
    a = model.forward(params, config, tokens)
    np.testing.assert_array_equal(a, model.forward(params, config, tokens))
    b = model.forward(params, config, tokens, dropout_key=jax.random.key(0))
    assert float(jnp.max(jnp.abs(a - b))) > 1e-4


def test_learned_embedding_and_options():
    config = model.preset("tiny").replace(embedding="learned", norm="rms", conv_kernel=4, scan="sequential")
    params = model.init_params(config, jax.random.key(0))
    assert params["embed"]["table"].shape == (256, 16)
    tokens = random_tokens(1, 19)
    parallel = model.forward(params, config, tokens)
    assert float(jnp.max(jnp.abs(parallel - stepwise_logits(params, config, tokens)))) < 1e-4


def test_config_json_round_trip_and_validation():
    config = model.preset("realtime")
    assert ModelConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["pooling"] == [4, 4, 4, 5]
    with pytest.raises(ValueError, match="gate_blocks"):
        config.replace(gate_blocks=7)
    with pytest.raises(ValueError, match="unknown preset"):
        model.preset("huge")


def test_config_overrides_as_train_set_takes_them():
    config = model.preset("realtime-2x").with_overrides(["widths=48,96,144,192,256", "dropout=0.2"])
    assert config.widths == (48, 96, 144, 192, 256) and config.dropout == 0.2
    assert config.blocks == model.preset("realtime-2x").blocks
    bad = ((["widths"], "KEY=VALUE"), (["depth=3"], "unknown model field"), (["gate_blocks=7"], "gate"))
    for pairs, message in bad:
        with pytest.raises(ValueError, match=message):
            model.preset("realtime").with_overrides(pairs)


def test_remat_gives_the_same_gradients(preset_params):
    config, params = preset_params("tiny")
    tokens = random_tokens(1, 24)

    def loss(params, remat):
        logits = model.forward(params, config, tokens, remat=remat)
        return -jnp.mean(jax.nn.log_softmax(logits)[0, jnp.arange(24), tokens[0]])

    plain = jax.grad(loss)(params, False)
    recomputed = jax.grad(loss)(params, True)
    diffs = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), plain, recomputed)
    assert max(jax.tree.leaves(diffs)) < 1e-5


def test_wrongly_shaped_inputs_fail_with_a_clear_error(preset_params):
    """The functional API checks its shape annotations (engine.array_typing) when it is
    traced or called: the error names the argument, the shape given and the axes expected."""
    config, params = preset_params("tiny")
    state = model.init_state(params, config, 2)
    with pytest.raises(jaxtyping.TypeCheckError, match="parameter 'token'") as error:
        model.step(params, config, state, jnp.zeros((2, 1), jnp.int32))  # one token per voice: [2]
    assert "Actual value: i32[2,1]" in str(error.value) and "'batch'" in str(error.value)
    with pytest.raises(jaxtyping.TypeCheckError, match="parameter 'tokens'") as error:
        model.forward(params, config, jnp.zeros(8, jnp.int32))  # [batch, time]
    assert "'batch time'" in str(error.value)
    with pytest.raises(jaxtyping.TypeCheckError, match="parameter 'tokens'"):
        model.prefill(params, config, np.zeros(8, np.int32))
    with pytest.raises(jaxtyping.TypeCheckError, match="parameter 'gumbel'") as error:
        sampling.sample(jnp.zeros((2, 256)), jnp.zeros((3, 256)), 1.0, 1.0)  # noise of 3 voices for 2
    assert "batch=2" in str(error.value)
