"""The fast CPU path of the generator: weights packed for `engine.fast_kernel`.

    packed = PackedModel.pack(params, config)
    state = packed.start(voices)                       # zero state, START_TOKEN fed
    state = packed.from_model_state(jax_state, logits) # or after `model.prefill`
    tokens = packed.generate(state, uniforms, temperature=1.0, top_p=1.0)   # [T, V]
    logits = packed.feed(state, tokens)                # teacher forcing: [T, V, 256]

`engine.model.step` stays the reference: with float32 matrices the kernel computes the
same float32 arithmetic (tests/test_fast_step.py holds its logits within 1e-5 of it);
with bfloat16 matrices (`PackedModel.pack`'s `bf16`) that of `model.step` on weights
whose matrix kernels are rounded to bfloat16, still summing in float32 (the same test
holds it within 1e-5 of that). It samples from the same distribution (softmax at the
temperature, the same top-p nucleus) but by inverting the cumulative distribution at
one uniform draw per sample (`engine.sampling.chunk_uniforms`) instead of Gumbel-argmax
over 256 noise values: a random seed gives one reproducible take on each path, not the
same take on both.

Several voices run on all cores (`fast_kernel.run_voices_in_parallel`), one voice on the
calling thread.

Layout: one array holds the kernels of every matrix product (dense layers, pools, head),
float32 or bfloat16 (half the bytes the kernel reads per sample, docs/model.md); one
float32 array holds the other weights (biases, norms, the CG-LRUs' decays and phases,
conv kernels, the embedding). int64 tables give each level's and each block pair's
offsets into them (`engine.fast_kernel` names the columns), and the offsets of their
recurrent state in a float32 [voices, S] array. Weights that the step only uses
through a fixed function are stored as that function: -8 softplus(lam) for each CG-LRU,
the sinusoidal embedding as its table, the MLP's gate and up projections as one matrix.
The two block-diagonal gate projections keep only their blocks.

numba caches the compiled kernel in the user cache folder (NUMBA_CACHE_DIR, set here
before numba is imported unless the environment sets it); `harmonic warmup` fills it.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import threading
from pathlib import Path

import ml_dtypes
import numpy as np
import platformdirs

from engine.config import ModelConfig
from engine.embedding import sinusoidal_table
from engine.model import START_TOKEN
from engine.mulaw import NUM_CLASSES
from engine.unet import LevelState

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(platformdirs.user_cache_dir("harmonicrnn")) / "numba"))

import numba  # noqa: E402  (after NUMBA_CACHE_DIR is set)

from engine import fast_kernel as K  # noqa: E402

# numba's default thread pool (workqueue) aborts if two threads enter parallel code at
# once; generators in different threads take turns for multi-voice chunks.
_PARALLEL_CALLS = threading.Lock()


class Sampling(enum.IntEnum):
    """How `PackedModel.generate` draws each sample (the kernel's modes)."""

    GREEDY = K.GREEDY
    SAMPLE = K.SAMPLE
    NUCLEUS = K.NUCLEUS

    @classmethod
    def of(cls, temperature: float, top_p: float) -> Sampling:
        if temperature == 0.0:
            return cls.GREEDY
        return cls.NUCLEUS if top_p < 1.0 else cls.SAMPLE


@dataclasses.dataclass
class KernelState:
    """The generator state in the kernel's arrays.

    Attributes:
      values: float32 [V, S]: every CG-LRU's h (re then im), conv windows, pool windows
        and pending up-pooled outputs, at the offsets of `PackedModel.levels`/`pairs`.
      steps: int64 [L], steps each level has taken (`LevelState.t`).
      logits: float32 [V, 256], the distribution of the next sample.
    """

    values: np.ndarray
    steps: np.ndarray
    logits: np.ndarray

    @property
    def voices(self) -> int:
        return self.values.shape[0]


class _Builder:
    """Appends arrays to one flat float32 buffer and returns their offsets."""

    def __init__(self) -> None:
        self.pieces: list[np.ndarray] = []
        self.size = 0

    def add(self, array) -> int:
        flat = np.asarray(array, np.float32).reshape(-1)
        offset = self.size
        self.pieces.append(flat)
        self.size += flat.size
        return offset

    def reserve(self, size: int) -> int:
        offset, self.size = self.size, self.size + size
        return offset

    def array(self) -> np.ndarray:
        return np.concatenate(self.pieces) if self.pieces else np.zeros(0, np.float32)


@dataclasses.dataclass(frozen=True)
class PackedModel:
    """A model's weights and state layout for `engine.fast_kernel.run`.

    Attributes:
      config: the model config.
      weights: float32 [W], the weights outside matrix products: biases, norms, the
        CG-LRUs' decays and phases, conv kernels, the embedding table.
      matrices: [M], the kernels of every matrix product (dense layers, pools, head):
        bfloat16 bits (uint16), or float32 without `pack`'s `bf16`.
      model: int64 [MODEL_FIELDS], model-wide offsets and options.
      levels: int64 [L, LEVEL_FIELDS], per level: shape, pair ranges, pool offsets.
      pairs: int64 [P, PAIR_FIELDS], per block pair: weight and state offsets.
      state_size: S, floats of state per voice.
    """

    config: ModelConfig
    weights: np.ndarray
    matrices: np.ndarray
    model: np.ndarray
    levels: np.ndarray
    pairs: np.ndarray
    state_size: int

    @classmethod
    def pack(cls, params: dict, config: ModelConfig, bf16: bool = True) -> PackedModel:
        """Copies `params` (a params pytree of `config`) into the kernel's layout.

        Args:
          bf16: store the matrices as bfloat16, each rounded to the nearest (half the
            bytes the kernel reads per sample, docs/model.md); False keeps them float32,
            the float32 arithmetic of `engine.model.step`.
        """
        params = _to_numpy(params)
        weights, matrices, states = _Builder(), _Builder(), _Builder()
        model = np.zeros(K.MODEL_FIELDS, np.int64)
        table = params["embed"]["table"] if config.embedding == "learned" else sinusoidal_table(config.widths[0])
        model[K.EMBED] = weights.add(table)
        model[K.FINAL_NORM_SCALE] = weights.add(params["final_norm"]["scale"])
        model[K.FINAL_NORM_BIAS] = weights.add(params["final_norm"].get("bias", np.zeros(config.widths[0])))
        model[K.HEAD_W] = matrices.add(params["head"]["kernel"])
        model[K.HEAD_B] = weights.add(params["head"]["bias"])
        model[K.RMS_NORM] = config.norm == "rms"
        model[K.CONV_KERNEL] = config.conv_kernel
        model[K.POOL_GROUPS] = config.pool_groups
        model[K.GATE_BLOCKS] = config.gate_blocks
        levels = np.zeros((config.num_levels, K.LEVEL_FIELDS), np.int64)
        pairs: list[np.ndarray] = []
        level_params = params["root"]
        for k in range(config.num_levels):
            row = levels[k]
            width = config.widths[k]
            row[K.WIDTH], row[K.HALF] = width, config.lru_width(k) // 2
            row[K.DOWN_FIRST], row[K.DOWN_COUNT] = len(pairs), config.blocks[k]
            pairs += [
                _pack_pair(level_params["down_blocks"][f"pair_{i}"], config, k, weights, matrices, states)
                for i in range(config.blocks[k])
            ]
            if k < config.num_levels - 1:
                factor = config.pooling[k]
                row[K.FACTOR] = factor
                row[K.DOWN_POOL_W] = matrices.add(level_params["down_pool"]["kernel"])
                row[K.DOWN_POOL_B] = weights.add(level_params["down_pool"]["bias"])
                row[K.UP_POOL_W] = matrices.add(level_params["up_pool"]["kernel"])
                row[K.UP_POOL_B] = weights.add(level_params["up_pool"]["bias"])
                row[K.WINDOW_STATE] = states.reserve((factor - 1) * width)
                row[K.PENDING_STATE] = states.reserve(factor * width)
                row[K.UP_FIRST], row[K.UP_COUNT] = len(pairs), config.blocks[k]
                pairs += [
                    _pack_pair(level_params["up_blocks"][f"pair_{i}"], config, k, weights, matrices, states)
                    for i in range(config.blocks[k])
                ]
                level_params = level_params["inner"]
        pair_table = np.stack(pairs) if pairs else np.zeros((0, K.PAIR_FIELDS), np.int64)
        matrix_array = _bfloat16_bits(matrices.array()) if bf16 else matrices.array()
        return cls(config, weights.array(), matrix_array, model, levels, pair_table, states.size)

    # ----- states ------------------------------------------------------------------------

    def zero_state(self, voices: int) -> KernelState:
        """The state before START_TOKEN (`engine.model.init_state`), logits zero."""
        return KernelState(
            np.zeros((voices, self.state_size), np.float32),
            np.zeros(self.config.num_levels, np.int64),
            np.zeros((voices, NUM_CLASSES), np.float32),
        )

    def start(self, voices: int) -> KernelState:
        """The state after START_TOKEN, with the first sample's logits."""
        state = self.zero_state(voices)
        self.feed(state, np.full((1, voices), START_TOKEN, np.int32), record=False)
        return state

    def from_model_state(self, model_state: LevelState, logits) -> KernelState:
        """The kernel's copy of an `engine.model` state (e.g. from `model.prefill`) and
        the logits that came with it."""
        logits = np.asarray(logits, np.float32)
        state = self.zero_state(logits.shape[0])
        state.logits[:] = logits
        level_state: LevelState | None = model_state
        for k in range(self.config.num_levels):
            if level_state is None:
                raise ValueError(f"the state has {k} levels, the model {self.config.num_levels}")
            row = self.levels[k]
            state.steps[k] = int(level_state.t)
            sides = [(row[K.DOWN_FIRST], level_state.down)]
            if k < self.config.num_levels - 1:
                sides.append((row[K.UP_FIRST], level_state.up))
                state.values[:, _span(row[K.WINDOW_STATE], level_state.pool_window)] = _rows(level_state.pool_window)
                state.values[:, _span(row[K.PENDING_STATE], level_state.pending)] = _rows(level_state.pending)
            for first, blocks in sides:
                for i, block in enumerate(blocks):
                    pair = self.pairs[first + i]
                    h = np.concatenate([np.asarray(block.lru.h.re), np.asarray(block.lru.h.im)], axis=1)
                    state.values[:, _span(pair[K.H_STATE], h)] = h
                    if block.conv is not None:
                        window = block.conv.window
                        state.values[:, _span(pair[K.CONV_STATE], window)] = _rows(window)
            level_state = level_state.inner
        return state

    # ----- running -----------------------------------------------------------------------

    def precompile(self) -> None:
        """Compiles (or loads from numba's cache) both kernels, one voice and several,
        by generating a few samples from a throwaway state."""
        for voices in (1, 2):
            self.generate(self.start(voices), np.zeros((2, voices), np.float32), 1.0, 1.0)

    def feed(self, state: KernelState, tokens: np.ndarray, record: bool = True) -> np.ndarray:
        """Teacher forcing: steps through tokens int32 [T, V]; returns the logits after
        each, float32 [T, V, 256] ([0, V, 256] without `record`)."""
        tokens = np.ascontiguousarray(tokens, np.int32)
        voices = state.voices
        out = np.empty((tokens.shape[0] if record else 0, voices, NUM_CLASSES), np.float32)
        none = np.zeros((0, voices), np.float32)
        self._run(state, tokens, none, 1.0, 1.0, K.FORCED, out, none)
        return out

    def generate(
        self,
        state: KernelState,
        uniforms: np.ndarray,
        temperature: float,
        top_p: float,
        surprisal: np.ndarray | None = None,
    ) -> np.ndarray:
        """Samples len(uniforms) tokens per voice, one uniform draw each (float32 [T, V]
        in [0, 1), `engine.sampling.chunk_uniforms`): int32 [T, V]; advances `state`.

        Args:
          surprisal: float32 [T, V] (C-contiguous) to fill with each sample's surprisal,
            -log2 softmax(logits)[token] at temperature 1 (`engine.watchdog`); None skips it.
        """
        uniforms = np.ascontiguousarray(uniforms, np.float32)
        tokens = np.empty(uniforms.shape, np.int32)
        empty = np.zeros((0, state.voices, NUM_CLASSES), np.float32)
        if surprisal is None:
            surprisal = np.zeros((0, state.voices), np.float32)
        elif surprisal.shape != uniforms.shape or surprisal.dtype != np.float32 or not surprisal.flags.c_contiguous:
            raise ValueError(f"surprisal must be C-contiguous float32 {uniforms.shape}, got {surprisal.shape}")
        mode = Sampling.of(temperature, top_p)
        self._run(state, tokens, uniforms, max(temperature, 1e-6), top_p, mode, empty, surprisal)
        return tokens

    def _run(self, state, tokens, uniforms, temperature, top_p, mode, record, surprisal) -> None:
        arguments = (
            self.weights,
            self.matrices,
            self.model,
            self.levels,
            self.pairs,
            state.values,
            state.steps,
            state.logits,
            tokens,
            uniforms,
            np.float32(temperature),
            np.float32(top_p),
            np.int64(mode),
            record,
            surprisal,
        )
        threads = min(state.voices, numba.get_num_threads())
        if threads > 1:
            with _PARALLEL_CALLS:
                K.run_voices_in_parallel(*arguments, np.int64(threads))
        else:
            K.run(*arguments)


def _pack_pair(
    pair: dict, config: ModelConfig, level: int, weights: _Builder, matrices: _Builder, states: _Builder
) -> np.ndarray:
    """Appends one block pair's weights and matrices; returns its row of the pair table."""
    row = np.zeros(K.PAIR_FIELDS, np.int64)
    temporal, mlp, lru = pair["temporal"], pair["mlp"], pair["temporal"]["lru"]
    width = config.widths[level]

    def norm(params: dict, scale_field: int, bias_field: int) -> None:
        row[scale_field] = weights.add(params["scale"])
        row[bias_field] = weights.add(params.get("bias", np.zeros(width)))

    def dense(params: dict, kernel_field: int, bias_field: int) -> None:
        row[kernel_field] = matrices.add(params["kernel"])
        row[bias_field] = weights.add(params["bias"])

    norm(temporal["norm"], K.T_NORM_SCALE, K.T_NORM_BIAS)
    if config.conv_kernel:  # depthwise: element-wise products, not a matrix
        row[K.CONV_W] = weights.add(temporal["conv"]["weight"])
        row[K.CONV_B] = weights.add(temporal["conv"]["bias"])
    dense(lru["in_proj"], K.IN_W, K.IN_B)
    gate_blocks = [np.ravel(lru[name]["kernel"]) for name in ("gate_a", "gate_x")]  # each [blocks, in, out]
    row[K.GATES_W] = matrices.add(np.concatenate(gate_blocks))
    row[K.GATES_B] = weights.add(np.concatenate([lru["gate_a"]["bias"], lru["gate_x"]["bias"]]))
    lam = np.asarray(lru["lam"], np.float32)
    softplus = np.logaddexp(np.float32(0), lam)  # float32, as jax.nn.softplus
    row[K.LOG_DECAY] = weights.add(-np.float32(K.GATE_POWER) * softplus)
    row[K.THETA] = weights.add(lru["theta"])
    dense(lru["out_proj"], K.LRU_OUT_W, K.LRU_OUT_B)
    dense(temporal["gate_proj"], K.T_GATE_W, K.T_GATE_B)
    dense(temporal["out_proj"], K.T_OUT_W, K.T_OUT_B)
    norm(mlp["norm"], K.M_NORM_SCALE, K.M_NORM_BIAS)
    row[K.M_IN_W] = matrices.add(np.concatenate([mlp["gate_proj"]["kernel"], mlp["up_proj"]["kernel"]], axis=1))
    row[K.M_IN_B] = weights.add(np.concatenate([mlp["gate_proj"]["bias"], mlp["up_proj"]["bias"]]))
    dense(mlp["out_proj"], K.M_OUT_W, K.M_OUT_B)
    row[K.H_STATE] = states.reserve(config.lru_width(level))
    row[K.CONV_STATE] = states.reserve(max(config.conv_kernel - 1, 0) * width)
    return row


def _bfloat16_bits(array: np.ndarray) -> np.ndarray:
    """float32 [n] -> uint16 [n]: each value rounded to the nearest bfloat16 (ties to
    even, as JAX's astype(jnp.bfloat16)), as its bits, the upper half of a float32's."""
    return array.astype(ml_dtypes.bfloat16).view(np.uint16)


def _to_numpy(tree):
    if isinstance(tree, dict):
        return {key: _to_numpy(value) for key, value in tree.items()}
    return np.asarray(tree)


def _rows(array) -> np.ndarray:
    """[V, ...] -> float32 [V, prod(...)]."""
    array = np.asarray(array, np.float32)
    return array.reshape(array.shape[0], -1)


def _span(offset: int, array) -> slice:
    """The state columns of `array` ([V, ...]) stored at `offset`."""
    return slice(int(offset), int(offset) + int(np.prod(np.shape(array)[1:])))
