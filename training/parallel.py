"""Context and data parallelism over a ("data", "seq") device mesh (SPEC 7).

The batch is split over "data" and the time axis over "seq" in contiguous chunks. Inside
`jax.shard_map` every device runs `engine.model.forward(..., sequence_axis="seq")` on its
chunk: the model exchanges left-context halos with `ppermute` (input shift, pooling
windows) and each CG-LRU folds the chunks before it in with one all-gather. The masked
NLL sums and counts are `psum`med over both axes, so the loss is the global mean.

Gradients are taken *outside* the shard_map of the psum'd mean: JAX transposes psum,
all_gather and ppermute itself, and the replicated params get their cotangents summed
over the mesh. `tests/test_parallel.py` checks loss and gradients against one device.

Multi-host: call `initialize_distributed` before anything touches a device; the mesh then
spans every process's devices and each process feeds only its addressable shards
(`global_batch`).
"""

from __future__ import annotations

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from engine import model

LN2 = math.log(2.0)
AXES = ("data", "seq")


@dataclasses.dataclass(frozen=True)
class ParallelConfig:
    """How the devices are used.

    Attributes:
      seq_shards: devices the time axis is split over (context parallelism).
      data_shards: devices the batch is split over; 0 means all remaining devices.
      remat: recompute each block's activations in the backward pass (long sequences).
      coordinator: "host:port" of process 0 for multi-host runs ("" = single process, or
        the standard environment variables if they are set).
      num_processes, process_id: for `jax.distributed.initialize` (-1 = from environment).
    """

    seq_shards: int = 1
    data_shards: int = 0
    remat: bool = False
    coordinator: str = ""
    num_processes: int = -1
    process_id: int = -1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def initialize_distributed(config: ParallelConfig) -> bool:
    """Starts JAX's multi-controller runtime when asked for; returns True if it did.

    Uses the flags when given, else the standard variables (JAX_COORDINATOR_ADDRESS,
    JAX_NUM_PROCESSES, JAX_PROCESS_ID) or a cluster JAX detects itself (SLURM, TPU pods).
    """
    coordinator = config.coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
    num = config.num_processes if config.num_processes >= 0 else int(os.environ.get("JAX_NUM_PROCESSES", "-1"))
    pid = config.process_id if config.process_id >= 0 else int(os.environ.get("JAX_PROCESS_ID", "-1"))
    if not coordinator and num < 0:
        return False
    kwargs = {}
    if coordinator:
        kwargs["coordinator_address"] = coordinator
    if num >= 0:
        kwargs["num_processes"] = num
    if pid >= 0:
        kwargs["process_id"] = pid
    try:  # CPU-only hosts need a collectives implementation across processes
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except Exception:
        pass
    jax.distributed.initialize(**kwargs)
    return True


def enable_compilation_cache() -> None:
    """Keeps compiled programs on disk, so a resumed run (or a second run of the same
    shapes) starts without recompiling. Respects JAX_COMPILATION_CACHE_DIR if set."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        directory = os.environ["JAX_COMPILATION_CACHE_DIR"]
    else:
        from platformdirs import user_cache_dir

        directory = os.path.join(user_cache_dir("harmonic"), "jax-cache")
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def make_mesh(data: int = 0, seq: int = 1, devices=None) -> Mesh:
    """A mesh with axes ("data", "seq") of shape (data, seq).

    Args:
      data: data-parallel size; 0 uses every device not taken by `seq`.
      seq: context-parallel size (time split into `seq` contiguous chunks).
      devices: default all devices of all processes.

    Neighbouring "seq" shards are neighbouring devices, so on one host the halo and
    all-gather traffic stays on the fastest links.
    """
    devices = list(jax.devices() if devices is None else devices)
    if seq < 1 or len(devices) % seq:
        raise ValueError(f"--seq-shards {seq} must divide the {len(devices)} devices")
    if data == 0:
        data = len(devices) // seq
    if data * seq > len(devices):
        raise ValueError(f"mesh {data} x {seq} needs {data * seq} devices, have {len(devices)}")
    grid = np.array(devices[: data * seq]).reshape(data, seq)
    return Mesh(grid, AXES)


def check_shapes(config: model.ModelConfig, mesh: Mesh, batch: int, length: int) -> None:
    """Raises ValueError unless [batch, length] splits evenly over `mesh` for `config`."""
    data, seq = mesh.shape["data"], mesh.shape["seq"]
    if batch % data:
        raise ValueError(f"batch size {batch} must be a multiple of the {data} data shards")
    chunk = length // seq
    if length % seq or chunk % config.total_pooling:
        raise ValueError(
            f"sequence length {length} must be a multiple of seq shards ({seq}) x total pooling "
            f"({config.total_pooling}) = {seq * config.total_pooling}"
        )


def token_nll(logits: jax.Array, tokens: jax.Array) -> jax.Array:
    """Negative log-likelihood in nats of each token: logits [..., 256], tokens int
    [...] -> [...]."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]


def _local_nll(params, config, tokens, mask, dropout_key, remat):
    """On one shard: (sum of NLL bits over mask, count), psum'd over the whole mesh."""
    if dropout_key is not None:
        index = jax.lax.axis_index("data") * jax.lax.axis_size("seq") + jax.lax.axis_index("seq")
        dropout_key = jax.random.fold_in(dropout_key, index)
    logits = model.forward(params, config, tokens, dropout_key, sequence_axis="seq", remat=remat)
    nll = token_nll(logits, tokens)
    mask = mask.astype(jnp.float32)
    total = jax.lax.psum(jnp.sum(nll * mask) / LN2, AXES)
    count = jax.lax.psum(jnp.sum(mask), AXES)
    return total, count


def sharded_nll(params, config, tokens, mask, mesh: Mesh, dropout_key=None, remat: bool = False):
    """(sum of NLL in bits over unmasked positions, their count) for the global batch.

    tokens int32 [B, T] and mask [B, T] are split P("data", "seq"); params are replicated.
    """
    if mesh.shape["seq"] == 1:
        # No context parallelism: a plain jit over the batch-sharded arrays (XLA's SPMD
        # partitioner splits the batch); the same numbers, and it compiles several times
        # faster than the shard_map path.
        batch = NamedSharding(mesh, P("data", None))
        tokens = jax.lax.with_sharding_constraint(tokens, batch)
        mask = jax.lax.with_sharding_constraint(mask, batch)
        logits = model.forward(params, config, tokens, dropout_key, remat=remat)
        nll = token_nll(logits, tokens)
        mask = mask.astype(jnp.float32)
        return jnp.sum(nll * mask) / LN2, jnp.sum(mask)
    has_key = dropout_key is not None

    def local(params, tokens, mask, *key):
        return _local_nll(params, config, tokens, mask, key[0] if has_key else None, remat)

    in_specs = (P(), P("data", "seq"), P("data", "seq")) + ((P(),) if has_key else ())
    fn = jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=(P(), P()))
    args = (params, tokens, mask) + ((dropout_key,) if has_key else ())
    return fn(*args)


def mean_loss(params, config, tokens, mask, mesh, dropout_key=None, remat=False):
    """Mean NLL in bits per sample over unmasked positions (differentiable)."""
    total, count = sharded_nll(params, config, tokens, mask, mesh, dropout_key, remat)
    return total / jnp.maximum(count, 1.0)


def loss_and_grads(params, config, tokens, mesh: Mesh, mask=None, dropout_key=None, remat: bool = False):
    """(mean NLL bits per sample, grads w.r.t. params), computed over `mesh`.

    Args:
      params: replicated params pytree.
      config: the model config.
      tokens: int32 [B, T]; B divisible by the "data" size, T by "seq" x total pooling.
      mesh: from `make_mesh`.
      mask: optional [B, T] of 0/1 (padding excluded from the loss); default all ones.
      dropout_key: None for a deterministic pass.
      remat: rematerialise per block.
    """
    tokens = jnp.asarray(tokens, jnp.int32)
    check_shapes(config, mesh, tokens.shape[0], tokens.shape[1])
    if mask is None:
        mask = jnp.ones(tokens.shape, jnp.float32)
    return _loss_and_grads_jit(params, config, tokens, mask, mesh, dropout_key, remat)


def _loss_and_grads_impl(params, config, tokens, mask, mesh, dropout_key, remat):
    return jax.value_and_grad(mean_loss)(params, config, tokens, mask, mesh, dropout_key, remat)


_loss_and_grads_jit = jax.jit(_loss_and_grads_impl, static_argnames=("config", "mesh", "remat"))


def single_device_loss(params, config, tokens, mask=None):
    """Reference: the same masked mean NLL in bits without any mesh."""
    tokens = jnp.asarray(tokens, jnp.int32)
    mask = jnp.ones(tokens.shape, jnp.float32) if mask is None else jnp.asarray(mask, jnp.float32)
    logits = model.forward(params, config, tokens)
    nll = token_nll(logits, tokens)
    return jnp.sum(nll * mask) / LN2 / jnp.maximum(jnp.sum(mask), 1.0)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P("data", "seq"))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def global_batch(mesh: Mesh, array_fn, shape, dtype):
    """Builds a global [B, T] array from only this process's shards.

    `array_fn(row_slice, col_slice)` returns the numpy block for one addressable shard;
    it is called only for the shards this process holds, so each process reads just its
    own part of the data.
    """
    sharding = batch_sharding(mesh)
    return jax.make_array_from_callback(shape, sharding, lambda index: np.asarray(array_fn(*index), dtype))


def put_replicated(tree, mesh: Mesh):
    """Places a host pytree on every device of `mesh` (works across processes)."""
    sharding = replicated(mesh)

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)
