"""Memory-mapped data sets and a deterministic, prefetching batch sampler.

The batch of training step s is a pure function of (seed, s): clip indices and random
crop starts come from a generator seeded with both. A resumed run therefore sees exactly
the batches it would have seen, and the "data position" saved with a checkpoint is the
step itself. Each process reads only the rows and time ranges of its own shards.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import numpy as np

from engine.mulaw import SILENCE
from training.data.manifest import DataError, read_manifest


class Split:
    """One split of a built data set, memory-mapped."""

    def __init__(self, directory: str | Path, split: str):
        self.directory = Path(directory)
        self.manifest = read_manifest(directory)
        self.split = split
        try:
            self.tokens = np.load(self.directory / f"{split}_tokens.npy", mmap_mode="r")
            self.lengths = np.load(self.directory / f"{split}_lengths.npy")
            labels = self.directory / f"{split}_labels.npy"
            self.labels = np.load(labels) if labels.exists() else np.full(len(self.lengths), -1, np.int16)
        except (OSError, ValueError) as error:
            raise DataError(f"{directory}: split {split!r} is missing or damaged ({error})") from error
        if self.tokens.shape[0] != self.lengths.shape[0]:
            raise DataError(f"{directory}: {split} tokens and lengths disagree")

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def clip_len(self) -> int:
        return int(self.tokens.shape[1])

    @property
    def samples(self) -> int:
        return int(self.lengths.sum())


class BatchPlan:
    """Which clip and crop start each row of a step's batch uses (cheap, no data read)."""

    def __init__(self, split: Split, batch_size: int, seq_len: int, seed: int):
        if len(split) == 0:
            raise DataError(f"{split.directory}: split {split.split!r} has no clips")
        self.split, self.batch_size, self.seq_len, self.seed = split, batch_size, seq_len, seed

    def plan(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, step])
        rows = rng.integers(0, len(self.split), self.batch_size)
        lengths = self.split.lengths[rows]
        # A crop starts anywhere that keeps it inside the clip's real samples when it fits.
        room = np.maximum(lengths - self.seq_len, 0)
        starts = (rng.random(self.batch_size) * (room + 1)).astype(np.int64)
        return rows, starts

    def block(self, step: int, row_slice: slice, col_slice: slice) -> tuple[np.ndarray, np.ndarray]:
        """(tokens int32, mask float32) of rows `row_slice`, times `col_slice` of the batch."""
        rows, starts = self.plan(step)
        rows, starts = rows[row_slice], starts[row_slice]
        c0, c1, _ = col_slice.indices(self.seq_len)
        tokens = np.full((len(rows), c1 - c0), SILENCE, np.int32)
        mask = np.zeros((len(rows), c1 - c0), np.float32)
        clip_len = self.split.clip_len
        for i, (row, start) in enumerate(zip(rows, starts, strict=True)):
            a, b = start + c0, min(start + c1, clip_len)
            if b > a:
                tokens[i, : b - a] = self.split.tokens[row, a:b]
            valid = int(np.clip(self.split.lengths[row] - a, 0, c1 - c0))
            mask[i, :valid] = 1.0
        return tokens, mask


class Prefetcher:
    """Prepares the host blocks of upcoming steps on a background thread.

    `blocks_fn(step)` returns whatever the training loop needs for that step (numpy
    arrays for this process's shards); `get(step)` returns it in order.
    """

    def __init__(self, blocks_fn, first_step: int, depth: int = 4):
        self.blocks_fn = blocks_fn
        self.queue: queue.Queue = queue.Queue(depth)
        self.next_step = first_step
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(first_step,), daemon=True)
        self.thread.start()

    def _run(self, step):
        while not self.stop.is_set():
            try:
                item = (step, self.blocks_fn(step), None)
            except Exception as error:  # handed to the consumer
                item = (step, None, error)
            while not self.stop.is_set():
                try:
                    self.queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            step += 1

    def get(self, step: int):
        got, blocks, error = self.queue.get()
        if error is not None:
            raise error
        assert got == step, (got, step)
        return blocks

    def close(self):
        self.stop.set()
        self.thread.join(timeout=2)


def eval_batches(split: Split, batch_size: int, multiple: int, max_clips: int = 0):
    """Whole clips in order, padded to a multiple of `multiple` samples and to full
    batches (extra rows fully masked): yields (tokens int32 [B, L], mask float32 [B, L])."""
    n = len(split) if not max_clips else min(max_clips, len(split))
    order = np.unique(np.linspace(0, len(split) - 1, n).round().astype(np.int64))  # spread over the split
    length = -(-split.clip_len // multiple) * multiple
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        tokens = np.full((batch_size, length), SILENCE, np.int32)
        mask = np.zeros((batch_size, length), np.float32)
        tokens[: len(rows), : split.clip_len] = split.tokens[rows]
        for i, row in enumerate(rows):
            mask[i, : split.lengths[row]] = 1.0
        yield tokens, mask
