"""The ("data", "seq") device mesh and the arrays placed on it.

Multi-host: call `training.distributed.initialize` before anything touches a device;
the mesh then spans every process's devices and each process feeds only its
addressable shards (`global_batch`).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from engine.config import ModelConfig

AXES = ("data", "seq")


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


def check_shapes(config: ModelConfig, mesh: Mesh, batch: int, length: int) -> None:
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

    def block(index):
        return np.asarray(array_fn(*index), dtype)

    return jax.make_array_from_callback(shape, batch_sharding(mesh), block)


def put_replicated(tree, mesh: Mesh):
    """Places a host pytree on every device of `mesh` (works across processes)."""
    sharding = replicated(mesh)

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)
