"""Shape annotations of the engine's arrays, and the decorator that checks them at run time.

An annotation such as `Float[Array, "batch time 256"]` (jaxtyping) names each axis; within
one call a name stands for one size across the arguments and the result, and a number is
that size. `@typed` checks them with beartype when the function runs. For a jitted
function that is while it is traced, once per compiled program, so compiled calls cost
nothing; `model.prefill` checks once per seed audio. Code that runs per chunk on the
generator's host path (`chunk_uniforms`, `mulaw`) and flax modules' methods are annotated
only: their callers' checks cover them.
"""

from __future__ import annotations

from beartype import beartype
from jaxtyping import jaxtyped

typed = jaxtyped(typechecker=beartype)
