"""JAX's multi-controller runtime for runs over several processes or hosts."""

from __future__ import annotations

import os

import jax

from training.config import ParallelConfig


def initialize(config: ParallelConfig) -> bool:
    """Starts JAX's multi-controller runtime when asked for; returns True if it did.

    Uses the flags when given, else the standard variables (JAX_COORDINATOR_ADDRESS,
    JAX_NUM_PROCESSES, JAX_PROCESS_ID) or a cluster JAX detects itself (SLURM, TPU pods).
    Call it before anything touches a device.
    """
    coordinator = config.coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
    num = config.num_processes if config.num_processes >= 0 else int(os.environ.get("JAX_NUM_PROCESSES", "-1"))
    pid = config.process_id if config.process_id >= 0 else int(os.environ.get("JAX_PROCESS_ID", "-1"))
    if not coordinator and num < 0:
        return False
    # CPU-only hosts need a collectives implementation across processes (an option
    # that a future JAX may drop once it is the default).
    if "jax_cpu_collectives_implementation" in jax.config.values:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator or None,
        num_processes=num if num >= 0 else None,
        process_id=pid if pid >= 0 else None,
    )
    return True
