"""The CG-LRU's linear scan alone, per implementation, against its memory-bandwidth floor.

The scan h_t = a_t h_{t-1} + b_t reads a and b (two float32 pairs) and writes h (one
pair): 24 bytes per element at least. The floor is those bytes over the measured copy
bandwidth (bytes read + written by a large device copy).

    python benchmarks/scan.py            # on the GPU machine; --quick for a CPU smoke run
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.report import command_line, machine_line, write_section
from engine.scan import Complex, linear_scan
from training.doc_sections import markdown_table

BYTES_PER_ELEMENT = 24


def median_seconds(fn, *args, repeats=10):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def copy_bandwidth(num_bytes: int) -> float:
    """Bytes read + written per second by an elementwise copy of num_bytes of float32."""
    x = jax.random.normal(jax.random.key(0), (num_bytes // 4,), jnp.float32)
    seconds = median_seconds(jax.jit(lambda x: x * 1.0001), x)
    return 2 * num_bytes / seconds


def random_inputs(batch, length, width, seed):
    keys = jax.random.split(jax.random.key(seed), 4)
    modulus = jax.random.uniform(keys[0], (batch, length, width), minval=0.9, maxval=0.999)
    phase = jax.random.uniform(keys[1], (batch, length, width), maxval=0.3)
    a = Complex(modulus * jnp.cos(phase), modulus * jnp.sin(phase))
    b = Complex(*(jax.random.normal(k, (batch, length, width)) for k in keys[2:]))
    return a, b


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (CPU smoke run)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs alone")
    args = parser.parse_args()
    width = 128  # D / 2 complex channels of the paper preset
    shapes = [(8, 16_384), (1, 131_072), (1, 1_048_576), (16, 131_072)]
    if args.quick:
        shapes = [(2, 4096), (1, 16_384)]
    bandwidth = copy_bandwidth(64 << 20 if args.quick else 2 << 30)
    device = jax.devices()[0].device_kind
    rows = []
    for batch, length in shapes:
        a, b = random_inputs(batch, length, width, seed=batch + length)
        floor = BYTES_PER_ELEMENT * batch * length * width / bandwidth
        reference = None
        for impl in ("associative", "sequential"):
            scan = jax.jit(lambda a, b, impl=impl: linear_scan(a, b, None, impl)[0])
            h = scan(a, b)
            if reference is None:
                reference = h
            err = float(jnp.linalg.norm(h.re - reference.re) / jnp.linalg.norm(reference.re))
            seconds = median_seconds(scan, a, b)
            rows.append(
                [
                    impl,
                    batch,
                    f"{length:,}",
                    width,
                    f"{seconds * 1e3:.2f}",
                    f"{floor * 1e3:.2f}",
                    f"{seconds / floor:.1f}x",
                    f"{batch * length / seconds / 1e6:.0f}",
                    f"{err:.1e}",
                ]
            )
            print(rows[-1], flush=True)
    header = ["scan", "batch", "length", "channels", "ms", "floor ms", "over floor", "M steps/s", "rel. diff vs assoc."]
    table = markdown_table(header, rows)
    print(table)
    body = (
        f"{machine_line(device)} Copy bandwidth {bandwidth / 1e12:.2f} TB/s (read + write). "
        f"Floor = {BYTES_PER_ELEMENT} bytes per element / copy bandwidth.\n\n{table}"
    )
    if not args.no_write:
        write_section(
            "scan_" + ("cpu" if args.quick else "gpu"), f"CG-LRU scan vs memory floor ({device})", command_line(), body
        )


if __name__ == "__main__":
    main()
