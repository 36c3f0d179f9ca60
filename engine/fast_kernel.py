"""The fused one-step CPU kernel: many samples of a HarmonicRNN in one numba call.

XLA's compiled `engine.model.step` runs hundreds of tiny operations per sample, each
with its own loop and buffers, and per-operation overhead dominates on a CPU (see
docs/model.md). This module runs the same arithmetic as straight loops over
weights packed into two contiguous arrays, the matrices' `m` (float32, or bfloat16 bits
as uint16) and the other weights' `w` (float32) (`engine.fast_step.PackedModel` builds
them and documents the layout): per sample, the down blocks of each level, its down-pool,
the inner level only when the pool fires, the up blocks, the head, and the sampling,
without returning to Python.

Voices step in lockstep (their pooled levels fire together); `run_voices_in_parallel`
splits them over threads. Everything but bfloat16 matrices is float32 like the JAX path
(a bfloat16 entry is widened to float32 where it is read, and products are summed in
float32); complex numbers are (re, im) halves of the state. Compiled functions are
cached on disk (cache=True, in NUMBA_CACHE_DIR, which `engine.fast_step` points at the
user cache folder), one version per matrix type.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from engine.mulaw import NUM_CLASSES

F32 = np.float32

# Columns of the per-level table `levels` [L, LEVEL_FIELDS] (int64).
WIDTH, HALF, FACTOR, DOWN_FIRST, DOWN_COUNT, UP_FIRST, UP_COUNT = range(7)
DOWN_POOL_W, DOWN_POOL_B, UP_POOL_W, UP_POOL_B, WINDOW_STATE, PENDING_STATE = range(7, 13)
LEVEL_FIELDS = 13

# Columns of the per-block-pair table `pairs` [P, PAIR_FIELDS] (int64): weight offsets,
# into the matrices `m` for the kernels of matrix products (IN_W, GATES_W, LRU_OUT_W,
# T_GATE_W, T_OUT_W, M_IN_W, M_OUT_W; so are the levels' *_POOL_W and HEAD_W), into the
# weights `w` for the rest (kernels are [in, out] row-major as in flax; GATES_W is the
# CG-LRU's two block-diagonal gate projections, only their blocks: gate_a's
# [GATE_BLOCKS, D / GATE_BLOCKS, D / 2 / GATE_BLOCKS], then gate_x's; M_IN_W the MLP's
# gate and up projections as one [d, 4d] matrix, the gate's outputs first).
(
    T_NORM_SCALE,
    T_NORM_BIAS,
    CONV_W,
    CONV_B,
    IN_W,
    IN_B,
    GATES_W,
    GATES_B,
    LOG_DECAY,
    THETA,
    LRU_OUT_W,
    LRU_OUT_B,
    T_GATE_W,
    T_GATE_B,
    T_OUT_W,
    T_OUT_B,
    M_NORM_SCALE,
    M_NORM_BIAS,
    M_IN_W,
    M_IN_B,
    M_OUT_W,
    M_OUT_B,
    H_STATE,
    CONV_STATE,
) = range(24)
PAIR_FIELDS = 24

# Entries of the model-wide table `model` (int64).
EMBED, FINAL_NORM_SCALE, FINAL_NORM_BIAS, HEAD_W, HEAD_B, RMS_NORM, CONV_KERNEL, POOL_GROUPS, GATE_BLOCKS = range(9)
MODEL_FIELDS = 9

# Sampling modes of `run`: teacher forcing, argmax, a draw from softmax(logits / T),
# a draw from the top-p nucleus of it.
FORCED, GREEDY, SAMPLE, NUCLEUS = range(4)

NORM_EPS = F32(1e-6)  # flax's LayerNorm / RMSNorm default
GATE_POWER = F32(8.0)
GELU_C = F32(math.sqrt(2.0 / math.pi))
GELU_CUBIC = F32(0.044715)
HALF_F = F32(0.5)
ONE = F32(1.0)
TWO = F32(2.0)

_jit = numba.njit(cache=True, fastmath={"contract"}, nogil=True, error_model="numpy", boundscheck=False)


U1, U2, U3, U4, U5, U6, U7, U8 = (np.uint64(i) for i in range(1, 9))


@intrinsic
def _widen(typingctx, entry):
    """A matrix entry as float32: a float32 as it is, a uint16 as the bfloat16 it holds
    (the upper half of a float32's bits: zero-extend, shift left 16, bitcast; plain
    integer operations, so the loops that read matrices vectorise either way)."""
    if entry == types.float32:
        return types.float32(entry), lambda context, builder, signature, args: args[0]
    if entry == types.uint16:

        def codegen(context, builder, signature, args):
            bits = builder.shl(builder.zext(args[0], ir.IntType(32)), ir.Constant(ir.IntType(32), 16))
            return builder.bitcast(bits, ir.FloatType())

        return types.float32(entry), codegen
    return None


@_jit
def _matvec_add(matrix, n_in, n_out, x, y):
    """y[:n_out] += x[:n_in] @ matrix, matrix flat row-major [n_in, n_out], float32 or
    bfloat16 bits (uint16; numba compiles one version per type), summed in float32.

    Eight rows per pass: y is loaded and stored once per eight rows, so the loop is
    bound by the FMAs rather than by y's store-to-load latency (2x faster at d = 32).
    Indices are unsigned: numba guards every signed index against negative values, and
    that guard kept LLVM from vectorising (20-45% slower even with slices).
    """
    n_out = np.uint64(n_out)
    full = np.uint64(n_in - n_in % 8)
    for i in range(np.uint64(0), full, U8):
        x0, x1, x2, x3 = x[i], x[i + U1], x[i + U2], x[i + U3]
        x4, x5, x6, x7 = x[i + U4], x[i + U5], x[i + U6], x[i + U7]
        r0 = i * n_out
        r1, r2, r3, r4 = r0 + n_out, r0 + U2 * n_out, r0 + U3 * n_out, r0 + U4 * n_out
        r5, r6, r7 = r0 + U5 * n_out, r0 + U6 * n_out, r0 + U7 * n_out
        for o in range(n_out):
            y[o] += (
                x0 * _widen(matrix[r0 + o])
                + x1 * _widen(matrix[r1 + o])
                + x2 * _widen(matrix[r2 + o])
                + x3 * _widen(matrix[r3 + o])
            ) + (
                x4 * _widen(matrix[r4 + o])
                + x5 * _widen(matrix[r5 + o])
                + x6 * _widen(matrix[r6 + o])
                + x7 * _widen(matrix[r7 + o])
            )
    for i in range(full, np.uint64(n_in)):
        xi, row = x[i], i * n_out
        for o in range(n_out):
            y[o] += xi * _widen(matrix[row + o])


@_jit
def _dense(w, m, kernel, bias, n_in, n_out, x, y):
    """y[:, :n_out] = x[:, :n_in] @ W + b for every voice (W at `kernel` in the matrices m,
    b at `bias` in the weights w)."""
    matrix, b = m[kernel : kernel + n_in * n_out], w[bias : bias + n_out]
    for v in range(x.shape[0]):
        yv = y[v]
        for o in range(n_out):
            yv[o] = b[o]
        _matvec_add(matrix, n_in, n_out, x[v], yv)


@_jit
def _gates(w, m, kernel, bias, blocks, lru_width, u, gates):
    """gates[:, :D/2] = u @ gate_a + b_a and gates[:, D/2:] = u @ gate_x + b_x for every
    voice (D = lru_width), both block-diagonal: block k maps u's k-th D / blocks entries to
    the k-th D / 2 / blocks outputs. Only the blocks are stored (GATES_W; a dense [D, D]
    matrix held 1.34M zeros, 21% of the entries `realtime-2x` reads per sample).

    Block j of the 2 * blocks (gate_a's, then gate_x's) is stored j-th and writes the j-th
    D / 2 / blocks outputs of `gates`, so one loop serves both gates."""
    size_in, size_out = lru_width // blocks, lru_width // 2 // blocks
    block_size = size_in * size_out
    b = w[bias : bias + lru_width]
    for v in range(u.shape[0]):
        uv, gv = u[v], gates[v]
        for o in range(lru_width):
            gv[o] = b[o]
        for j in range(2 * blocks):
            first_in = (j % blocks) * size_in
            start = kernel + j * block_size
            _matvec_add(
                m[start : start + block_size],
                size_in,
                size_out,
                uv[first_in : first_in + size_in],
                gv[j * size_out : (j + 1) * size_out],
            )


@_jit
def _norm(w, scale, bias, rms, width, x, z):
    """z = LayerNorm(x) (flax's mean(x^2) - mean^2 variance) or RMSNorm(x), per voice."""
    gamma, beta = w[scale : scale + width], w[bias : bias + width]
    for v in range(x.shape[0]):
        xv, zv = x[v], z[v]
        total = F32(0.0)
        squares = F32(0.0)
        for i in range(width):
            total += xv[i]
            squares += xv[i] * xv[i]
        mean_square = squares / F32(width)
        if rms:
            inv = ONE / np.sqrt(mean_square + NORM_EPS)
            for i in range(width):
                zv[i] = xv[i] * inv * gamma[i]
        else:
            mean = total / F32(width)
            var = max(mean_square - mean * mean, F32(0.0))
            inv = ONE / np.sqrt(var + NORM_EPS)
            for i in range(width):
                zv[i] = (xv[i] - mean) * inv * gamma[i] + beta[i]


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float32 whose IEEE bits are the int32 `bits` (a bitcast, vectorisable)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


# exp: x = n ln2 + r (Cody-Waite split of ln2), |r| <= ln2 / 2, exp(r) by its Taylor
# series to r^6 (relative error < 2e-7), times 2^n built from its exponent bits. Unlike
# libm's expf it is plain arithmetic, so the loops that call it vectorise.
LOG2_E = F32(1.4426950408889634)
LN2_HI = F32(0.693359375)
LN2_LO = F32(-2.12194440e-4)
EXP_MIN, EXP_MAX = F32(-87.0), F32(88.0)
EXPM1_SERIES_BOUND = F32(-0.5)


@_jit
def _exp(x):
    x = min(max(x, EXP_MIN), EXP_MAX)
    n = np.floor(x * LOG2_E + HALF_F)
    r = x - n * LN2_HI - n * LN2_LO
    p = F32(1 / 720)
    p = p * r + F32(1 / 120)
    p = p * r + F32(1 / 24)
    p = p * r + F32(1 / 6)
    p = p * r + HALF_F
    p = p * r + ONE
    p = p * r + ONE
    return p * _float_from_bits((np.int32(n) + np.int32(127)) << np.int32(23))


@_jit
def _expm1_negative(x):
    """exp(x) - 1 for x <= 0, precise near 0 (Taylor series to x^8 above -0.5)."""
    p = F32(1 / 40320) * x + F32(1 / 5040)
    p = p * x + F32(1 / 720)
    p = p * x + F32(1 / 120)
    p = p * x + F32(1 / 24)
    p = p * x + F32(1 / 6)
    p = p * x + HALF_F
    p = p * x + ONE
    series = p * x
    return series if x > EXPM1_SERIES_BOUND else _exp(x) - ONE


# sin and cos: x = j pi/2 + y (pi/2 in three parts), |y| <= pi/4, Cephes' float32
# polynomials on y, then the quadrant j mod 4 swaps and negates them. Plain arithmetic
# and selects, so the recurrence loop vectorises (libm's sincosf is a call per channel).
HALF_PI_1, HALF_PI_2, HALF_PI_3 = F32(1.5703125), F32(4.837512969970703125e-4), F32(7.54978995489188216e-8)
TWO_OVER_PI = F32(0.6366197723675814)


@_jit
def _sincos(x):
    j = np.floor(x * TWO_OVER_PI + HALF_F)
    y = ((x - j * HALF_PI_1) - j * HALF_PI_2) - j * HALF_PI_3
    y2 = y * y
    sin = y + y * y2 * (F32(-1.6666654611e-1) + y2 * (F32(8.3321608736e-3) + y2 * F32(-1.9515295891e-4)))
    cos = (
        ONE
        - HALF_F * y2
        + y2 * y2 * (F32(4.166664568298827e-2) + y2 * (F32(-1.388731625493765e-3) + y2 * F32(2.443315711809948e-5)))
    )
    quadrant = np.int32(j) & np.int32(3)
    s = cos if quadrant & 1 else sin
    c = sin if quadrant & 1 else cos
    s = -s if quadrant & 2 else s
    c = -c if (quadrant + 1) & 2 else c
    return s, c


@_jit
def _sigmoid(x):
    return ONE / (ONE + _exp(-x))


@_jit
def _gelu(x):
    """flax's (tanh-approximate) GELU: x (1 + tanh(y)) / 2 = x sigmoid(2 y)."""
    return x * _sigmoid(TWO * GELU_C * (x + GELU_CUBIC * (x * x * x)))


@_jit
def _add(x, y, width):
    """x[:, :width] += y[:, :width]."""
    for v in range(x.shape[0]):
        xv, yv = x[v], y[v]
        for c in range(width):
            xv[c] += yv[c]


@_jit
def _pair_step(w, m, state, model, pair, width, half, x, scratch):
    """One block pair (temporal block, then MLP block) on x [V, width], in place."""
    rms = model[RMS_NORM] != 0
    lru_width = 2 * half
    z, lru_in, u, gates, h = scratch[0], scratch[1], scratch[2], scratch[3], scratch[4]
    branch, y, hidden = scratch[5], scratch[6], scratch[7]
    voices = x.shape[0]
    _norm(w, pair[T_NORM_SCALE], pair[T_NORM_BIAS], rms, width, x, z)
    kernel = model[CONV_KERNEL]
    if kernel > 0:  # causal depthwise conv: window of the last kernel - 1 inputs, then z
        window = pair[CONV_STATE]
        for v in range(voices):
            for c in range(width):
                acc = w[pair[CONV_B] + c]
                for k in range(kernel - 1):
                    acc += state[v, window + k * width + c] * w[pair[CONV_W] + k * width + c]
                acc += z[v, c] * w[pair[CONV_W] + (kernel - 1) * width + c]
                lru_in[v, c] = acc
            for k in range(kernel - 2):
                for c in range(width):
                    state[v, window + k * width + c] = state[v, window + (k + 1) * width + c]
            if kernel > 1:
                for c in range(width):
                    state[v, window + (kernel - 2) * width + c] = z[v, c]
    else:
        for v in range(voices):
            for c in range(width):
                lru_in[v, c] = z[v, c]
    # CG-LRU (engine.cglru): u = W_in x + b; gates; h = a h + sqrt(1 - |a|^2) i_t u.
    _dense(w, m, pair[IN_W], pair[IN_B], width, lru_width, lru_in, u)
    _gates(w, m, pair[GATES_W], pair[GATES_B], model[GATE_BLOCKS], lru_width, u, gates)
    hs = pair[H_STATE]
    log_decay = w[pair[LOG_DECAY] : pair[LOG_DECAY] + half]  # -8 softplus(lam)
    theta = w[pair[THETA] : pair[THETA] + half]
    for v in range(voices):
        ga, gx, uv, hv = gates[v, :half], gates[v, half:lru_width], u[v], h[v]
        # Vectorised: gate_a becomes the phase, gate_x the input's scale.
        for n in range(half):
            r = _sigmoid(ga[n])
            log_modulus = log_decay[n] * r
            ga[n] = theta[n] * r
            gx[n] = np.sqrt(-_expm1_negative(TWO * log_modulus)) * _sigmoid(gx[n])
            hv[n] = _exp(log_modulus)
        hstate = state[v, hs : hs + 2 * half]
        for n in range(half):
            modulus = hv[n]
            sin, cos = _sincos(ga[n])
            a_re, a_im = modulus * cos, modulus * sin
            h_re, h_im = hstate[n], hstate[half + n]
            new_re = a_re * h_re - a_im * h_im + uv[n] * gx[n]
            new_im = a_re * h_im + a_im * h_re + uv[half + n] * gx[n]
            hstate[n], hstate[half + n] = new_re, new_im
            hv[n], hv[half + n] = new_re, new_im
    _dense(w, m, pair[LRU_OUT_W], pair[LRU_OUT_B], lru_width, width, h, y)
    _dense(w, m, pair[T_GATE_W], pair[T_GATE_B], width, width, z, branch)
    for v in range(voices):
        bv, yv = branch[v], y[v]
        for c in range(width):
            bv[c] = yv[c] * _gelu(bv[c])
    _dense(w, m, pair[T_OUT_W], pair[T_OUT_B], width, width, branch, y)
    _add(x, y, width)
    # MLP block: x + W_out(gelu(W_gate z) * W_up z).
    _norm(w, pair[M_NORM_SCALE], pair[M_NORM_BIAS], rms, width, x, z)
    _dense(w, m, pair[M_IN_W], pair[M_IN_B], width, 4 * width, z, hidden)
    for v in range(voices):
        gate, up = hidden[v, : 2 * width], hidden[v, 2 * width : 4 * width]
        for c in range(2 * width):
            gate[c] = _gelu(gate[c]) * up[c]
    _dense(w, m, pair[M_OUT_W], pair[M_OUT_B], 2 * width, width, hidden, y)
    _add(x, y, width)


@_jit
def _down_pool(w, m, state, model, level, inner_width, x, pooled):
    """Appends x to the level's window; pooled = DownPool(window + x) (used if it fires).

    The kernel is [factor, groups, width / groups, inner_width / groups]."""
    width, factor, groups = level[WIDTH], level[FACTOR], model[POOL_GROUPS]
    window, kernel, bias = level[WINDOW_STATE], level[DOWN_POOL_W], level[DOWN_POOL_B]
    size_in, size_out = width // groups, inner_width // groups
    block = size_in * size_out
    for v in range(x.shape[0]):
        out = pooled[v]
        for o in range(inner_width):
            out[o] = w[bias + o]
        buffer = state[v, window : window + (factor - 1) * width]
        for k in range(factor):
            inputs = buffer[k * width : (k + 1) * width] if k < factor - 1 else x[v]
            for g in range(groups):
                start = kernel + (k * groups + g) * block
                _matvec_add(
                    m[start : start + block],
                    size_in,
                    size_out,
                    inputs[g * size_in : (g + 1) * size_in],
                    out[g * size_out : (g + 1) * size_out],
                )
        for i in range((factor - 2) * width):
            buffer[i] = buffer[width + i]
        if factor > 1:
            last = buffer[(factor - 2) * width :]
            for c in range(width):
                last[c] = x[v, c]


@_jit
def _up_pool(w, m, state, model, level, inner_width, inner_y):
    """The level's pending outputs [factor, width] = UpPool(inner_y).

    The kernel is [factor, groups, inner_width / groups, width / groups]."""
    width, factor, groups = level[WIDTH], level[FACTOR], model[POOL_GROUPS]
    pending, kernel, bias = level[PENDING_STATE], level[UP_POOL_W], level[UP_POOL_B]
    size_in, size_out = inner_width // groups, width // groups
    block = size_in * size_out
    for v in range(inner_y.shape[0]):
        out = state[v, pending : pending + factor * width]
        b = w[bias : bias + factor * width]
        for i in range(factor * width):
            out[i] = b[i]
        for k in range(factor):
            for g in range(groups):
                start = kernel + (k * groups + g) * block
                _matvec_add(
                    m[start : start + block],
                    size_in,
                    size_out,
                    inner_y[v, g * size_in : (g + 1) * size_in],
                    out[k * width + g * size_out : k * width + (g + 1) * size_out],
                )


@_jit
def _model_step(w, m, model, levels, pairs, state, steps, tokens, logits, xs, scratch):
    """One sample for every voice: tokens int32 [V] -> logits [V, 256]; advances state
    (float32 [V, S]) and the per-level step counters `steps` int64 [L]."""
    num_levels = levels.shape[0]
    voices = tokens.shape[0]
    width0 = levels[0, WIDTH]
    for v in range(voices):
        row = model[EMBED] + tokens[v] * width0
        for c in range(width0):
            xs[0][v, c] = w[row + c]
    # Down: each level's down blocks; the next level runs only if this one's pool fires.
    reached = num_levels - 1
    for k in range(num_levels):
        level = levels[k]
        for p in range(level[DOWN_COUNT]):
            _pair_step(w, m, state, model, pairs[level[DOWN_FIRST] + p], level[WIDTH], level[HALF], xs[k], scratch)
        if k == num_levels - 1:
            break
        _down_pool(w, m, state, model, level, levels[k + 1, WIDTH], xs[k], xs[k + 1])
        if steps[k] % level[FACTOR] != 0:
            reached = k
            break
    # Up: from the deepest level that ran, add the pending up-pooled output to the skip.
    for k in range(reached, -1, -1):
        level = levels[k]
        if k < num_levels - 1:
            width, phase = level[WIDTH], steps[k] % level[FACTOR]
            if k < reached:
                _up_pool(w, m, state, model, level, levels[k + 1, WIDTH], xs[k + 1])
            pending = level[PENDING_STATE] + phase * width
            x = xs[k]
            for v in range(voices):
                for c in range(width):
                    x[v, c] += state[v, pending + c]
            for p in range(level[UP_COUNT]):
                _pair_step(w, m, state, model, pairs[level[UP_FIRST] + p], width, level[HALF], x, scratch)
        steps[k] += 1
    z = scratch[0]
    _norm(w, model[FINAL_NORM_SCALE], model[FINAL_NORM_BIAS], model[RMS_NORM] != 0, width0, xs[0], z)
    _dense(w, m, model[HEAD_W], model[HEAD_B], width0, NUM_CLASSES, z, logits)


NUCLEUS_BUCKETS = 64


@_jit
def _nucleus_threshold(scaled, weights, total, low, high, top_p, values, masses, bucket_mass, buckets):
    """The least scaled logit of the top-p nucleus (the smallest set of most likely
    classes whose probability reaches top_p; the kept classes are those with scaled >=
    the result, ties kept together) and the kept classes' weight. Exact, without sorting
    256 values: a histogram of the scaled logits over NUCLEUS_BUCKETS equal intervals
    finds the interval where the nucleus ends (one pass), then a quickselect on
    probability mass among that interval's few classes finds the class.

    Args:
      scaled: float32 [256], logits / temperature, from `low` to `high`; weights:
        exp(scaled - high) of them, whose sum is `total`. values, masses: float32 [256],
        bucket_mass: float32 [NUCLEUS_BUCKETS], buckets: int32 [256], scratch.

    Returns:
      (threshold, the sum of the weights of the classes with scaled >= threshold).
    """
    need = top_p * total
    if high <= low:
        return high, total
    per_unit = F32(NUCLEUS_BUCKETS) / (high - low)
    bucket_mass[:] = 0.0
    for i in range(NUM_CLASSES):
        bucket = min(np.int32((scaled[i] - low) * per_unit), np.int32(NUCLEUS_BUCKETS - 1))
        buckets[i] = bucket
        bucket_mass[bucket] += weights[i]
    above = F32(0.0)  # mass of the classes already known to be in the nucleus
    boundary = 0
    for bucket in range(NUCLEUS_BUCKETS - 1, -1, -1):
        if above + bucket_mass[bucket] >= need:
            boundary = bucket
            break
        above += bucket_mass[bucket]
    count = 0
    for i in range(NUM_CLASSES):
        if buckets[i] == boundary:
            values[count], masses[count] = scaled[i], weights[i]
            count += 1
    pivot = low
    while count > 0:
        pivot = values[count // 2]
        # Three-way partition: [0, greater) > pivot, [less, count) < pivot.
        greater, less, i = 0, count, 0
        greater_mass, equal_mass = F32(0.0), F32(0.0)
        while i < less:
            value = values[i]
            if value > pivot:
                greater_mass += masses[i]
                values[i], values[greater] = values[greater], value
                masses[i], masses[greater] = masses[greater], masses[i]
                greater += 1
                i += 1
            elif value < pivot:
                less -= 1
                values[i], values[less] = values[less], value
                masses[i], masses[less] = masses[less], masses[i]
            else:
                equal_mass += masses[i]
                i += 1
        if above + greater_mass >= need:
            count = greater
        elif above + greater_mass + equal_mass >= need:
            return pivot, above + greater_mass + equal_mass
        else:
            above += greater_mass + equal_mass
            for j in range(count - less):
                values[j], masses[j] = values[less + j], masses[less + j]
            count -= less
    # Rounding left the need just above the total: keep down to the last pivot.
    kept = F32(0.0)
    for i in range(NUM_CLASSES):
        if scaled[i] >= pivot:
            kept += weights[i]
    return pivot, kept


@_jit
def _sample(logits, uniform, temperature, top_p, mode, scaled, weights, values, masses, bucket_mass, buckets):
    """One class for one stream: the argmax (GREEDY), or the inverse of the cumulative
    distribution of softmax(logits / temperature) (restricted to the top-p nucleus in
    NUCLEUS mode) at `uniform` in [0, 1)."""
    if mode == GREEDY:
        return np.int32(np.argmax(logits))
    low, high = F32(np.inf), F32(-np.inf)
    for i in range(NUM_CLASSES):
        value = logits[i] / temperature
        scaled[i] = value
        low, high = min(low, value), max(high, value)
    total = F32(0.0)
    for i in range(NUM_CLASSES):
        weights[i] = _exp(scaled[i] - high)
        total += weights[i]
    threshold = F32(-np.inf)
    if mode == NUCLEUS:
        threshold, total = _nucleus_threshold(
            scaled, weights, total, low, high, top_p, values, masses, bucket_mass, buckets
        )
    target = uniform * total
    running = F32(0.0)
    last = 0
    for i in range(NUM_CLASSES):
        if scaled[i] >= threshold and weights[i] > 0.0:
            running += weights[i]
            last = i
            if running > target:
                return np.int32(i)
    return np.int32(last)  # target rounded up to the total


@_jit
def _surprisal_bits(logits, token):
    """-log2 softmax(logits)[token]: the model's own surprise at the sample (at temperature 1,
    whatever the sampling settings), in bits."""
    high = F32(-np.inf)
    for i in range(NUM_CLASSES):
        high = max(high, logits[i])
    total = F32(0.0)
    for i in range(NUM_CLASSES):
        total += _exp(logits[i] - high)
    return (high - logits[token]) * LOG2_E + np.log2(total)


@_jit
def run(
    w, m, model, levels, pairs, state, steps, logits, tokens, uniforms, temperature, top_p, mode, record, surprisal
):
    """Generates (or, in FORCED mode, consumes) len(tokens) samples for every voice.

    Per sample t: token_t = sample(logits_t, uniforms[t]) (FORCED: tokens[t] as given), then
    logits_{t+1}, state = step(state, token_t), as `engine.generator.generate_chunk`.

    Args:
      w, m, model, levels, pairs: the packed model (`engine.fast_step.PackedModel`).
      state: float32 [V, S], updated in place; steps: int64 [L] per-level step counters.
      logits: float32 [V, 256], the next sample's logits; updated in place.
      tokens: int32 [T, V]; written with the samples (read in FORCED mode).
      uniforms: float32 [T, V] in [0, 1), one per sample (unused for FORCED and GREEDY).
      temperature, top_p: float32 sampling controls; mode: FORCED/GREEDY/SAMPLE/NUCLEUS.
      record: float32 [T, V, 256] receiving logits_{t+1}, or [0, V, 256] to skip.
      surprisal: float32 [T, V] receiving -log2 softmax(logits_t)[token_t] (bits, at
        temperature 1), or [0, V] to skip (the watchdog's statistic; off costs nothing).
    """
    voices = logits.shape[0]
    widest = 0
    for k in range(levels.shape[0]):
        widest = max(widest, 4 * levels[k, WIDTH], 2 * levels[k, HALF])
    xs = [np.empty((voices, levels[k, WIDTH]), F32) for k in range(levels.shape[0])]
    scratch = np.empty((8, voices, max(widest, NUM_CLASSES)), F32)
    sampling = np.empty((4, NUM_CLASSES), F32)
    bucket_mass = np.empty(NUCLEUS_BUCKETS, F32)
    buckets = np.empty(NUM_CLASSES, np.int32)
    for t in range(tokens.shape[0]):
        if mode != FORCED:
            for v in range(voices):
                tokens[t, v] = _sample(
                    logits[v],
                    uniforms[t, v],
                    temperature,
                    top_p,
                    mode,
                    sampling[0],
                    sampling[1],
                    sampling[2],
                    sampling[3],
                    bucket_mass,
                    buckets,
                )
        if surprisal.shape[0] > 0:
            for v in range(voices):
                surprisal[t, v] = _surprisal_bits(logits[v], tokens[t, v])
        _model_step(w, m, model, levels, pairs, state, steps, tokens[t], logits, xs, scratch)
        if record.shape[0] > 0:
            record[t] = logits


@numba.njit(cache=True, nogil=True, parallel=True)
def run_voices_in_parallel(
    w,
    m,
    model,
    levels,
    pairs,
    state,
    steps,
    logits,
    tokens,
    uniforms,
    temperature,
    top_p,
    mode,
    record,
    surprisal,
    groups,
):
    """`run` with the voices split into `groups` contiguous groups run on separate
    threads. Voices are independent streams, so the groups never wait for each other
    within a chunk; each keeps its own copy of the step counters, equal at the end."""
    voices = logits.shape[0]
    counters = np.empty((groups, steps.shape[0]), np.int64)
    for g in numba.prange(groups):
        low, high = g * voices // groups, (g + 1) * voices // groups
        counters[g] = steps
        group_tokens = np.ascontiguousarray(tokens[:, low:high])
        group_record = np.ascontiguousarray(record[:, low:high])
        group_surprisal = np.ascontiguousarray(surprisal[:, low:high])
        run(
            w,
            m,
            model,
            levels,
            pairs,
            state[low:high],
            counters[g],
            logits[low:high],
            group_tokens,
            np.ascontiguousarray(uniforms[:, low:high]),
            temperature,
            top_p,
            mode,
            group_record,
            group_surprisal,
        )
        tokens[:, low:high] = group_tokens
        record[:, low:high] = group_record
        surprisal[:, low:high] = group_surprisal
    steps[:] = counters[0]
