"""Model checkpoints: round trip, run folders, damaged and missing checkpoints."""

from pathlib import Path

import jax
import numpy as np
import pytest

from engine import checkpoint, model, shape_cache


def corrupt_weights(step_dir: Path):
    for path in (step_dir / "params").rglob("*"):
        if path.is_file() and path.parent.name == "d":
            path.write_bytes(b"garbage")


def test_round_trip(tmp_path, preset_params):
    config, params = preset_params("tiny")
    checkpoint.save_model(tmp_path / "m", config, params, {"name": "tiny test", "data": "none"})
    loaded = checkpoint.load_model(tmp_path / "m")
    assert loaded.config == config and loaded.card["name"] == "tiny test"
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_run_folder_uses_newest_step_that_loads(tmp_path, preset_params):
    config, params = preset_params("tiny")
    checkpoint.save_model(tmp_path / "run" / "100", config, params, {"name": "old"})
    checkpoint.save_model(tmp_path / "run" / "200", config, params, {"name": "new"})
    assert checkpoint.load_model(tmp_path / "run").card["name"] == "new"
    corrupt_weights(tmp_path / "run" / "200")
    assert checkpoint.load_model(tmp_path / "run").card["name"] == "old"


def test_damaged_weights_are_a_clear_error(tmp_path, preset_params):
    config, params = preset_params("tiny")
    checkpoint.save_model(tmp_path / "m", config, params)
    corrupt_weights(tmp_path / "m")
    with pytest.raises(checkpoint.CheckpointError, match="damaged"):
        checkpoint.load_model(tmp_path / "m")


def test_missing_or_not_a_checkpoint(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint at"):
        checkpoint.load_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(checkpoint.CheckpointError, match="holds no model checkpoint"):
        checkpoint.load_model(tmp_path / "empty")
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(checkpoint.CheckpointError, match="is a file"):
        checkpoint.load_model(tmp_path / "file.bin")


def test_weights_of_another_shape_are_rejected(tmp_path, preset_params):
    config, params = preset_params("tiny")
    checkpoint.save_model(tmp_path / "m", config.replace(widths=(16, 16, 64)), params)
    with pytest.raises(checkpoint.CheckpointError, match="do not match"):
        checkpoint.load_model(tmp_path / "m")


def test_refuses_to_overwrite(tmp_path, preset_params):
    config, params = preset_params("tiny")
    checkpoint.save_model(tmp_path / "m", config, params)
    with pytest.raises(checkpoint.CheckpointError, match="already exists"):
        checkpoint.save_model(tmp_path / "m", config, params)


def test_relative_paths(tmp_path, monkeypatch, preset_params):
    config, params = preset_params("tiny")
    monkeypatch.chdir(tmp_path)
    checkpoint.save_model("run/7", config, params, {"name": "relative"})
    assert checkpoint.load_model("run").card["name"] == "relative"
    assert checkpoint.read_meta("run/7")["card"]["name"] == "relative"


def test_a_checkpoint_of_the_older_format_is_named_as_such(tmp_path, preset_params):
    # Format 1 kept one weight subtree per block; format 2 groups them by block pair.
    config, params = preset_params("tiny")
    meta = {"format": "harmonicrnn-model/1", "config": config.to_dict(), "card": {}}
    checkpoint.write_params_and_meta(tmp_path / "old", params, meta)
    with pytest.raises(checkpoint.CheckpointError, match="format 'harmonicrnn-model/1'"):
        checkpoint.load_model(tmp_path / "old")


def test_pair_weights_are_grouped_per_level_side(preset_params):
    config, params = preset_params("realtime")
    deepest = params["root"]
    for _ in range(config.num_levels - 1):
        assert sorted(name for name in deepest if name.endswith("_blocks")) == ["down_blocks", "up_blocks"]
        deepest = deepest["inner"]
    assert sorted(deepest["down_blocks"]) == ["pair_0", "pair_1"]
    assert sorted(deepest["down_blocks"]["pair_0"]) == ["mlp", "temporal"]


def test_the_shapes_a_config_implies_are_kept_in_the_cache_folder(tmp_path, monkeypatch, preset_params):
    """A warm load reads the config's weight shapes from the cache folder instead of tracing
    flax's init; the entry is keyed by config, and a damaged entry is computed again."""
    monkeypatch.setenv("HARMONIC_COMPILE_CACHE", str(tmp_path / "cache"))
    config, params = preset_params("tiny")
    checkpoint.save_model(tmp_path / "m", config, params)
    checkpoint.load_model(tmp_path / "m")
    (entry,) = (tmp_path / "cache" / "param-shapes").glob("*.json")
    assert shape_cache.expected_shapes(config) == shape_cache.flat_shapes(model.param_shapes(config))
    entry.write_text("{\"['embed']\": [1]}")  # a stale or foreign entry would reject good weights
    with pytest.raises(checkpoint.CheckpointError, match="do not match"):
        checkpoint.load_model(tmp_path / "m")
    entry.write_text("{damaged")
    assert checkpoint.load_model(tmp_path / "m").config == config
    assert shape_cache.expected_shapes(config.replace(widths=(16, 16, 64))) != shape_cache.expected_shapes(config)
    assert len(list(entry.parent.glob("*.json"))) == 2
