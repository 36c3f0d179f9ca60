"""An effects chain run block by block on the live stream (docs/spec.md §9).

    chain = EffectsChain(ChainSpec.load("chain.json"), max_block=4096)
    out = chain.process(block)        # float32 [n] -> float32 [n] at 16 kHz; tails carry on
    chain.set_parameter(0, "room_size", 0.9)    # from any thread; applied before the next block
    ring_out = chain.tail(2.0)        # what the chain rings out with when the input stops

The signal is mono at 16 kHz. Each plugin gets the channels it takes: mono is duplicated
for a stereo-only plugin, stereo mixed down for a mono one, and the chain's output is the
mean of the last channels. With `ChainSpec.rate == 48000` the block is resampled up with a
streaming soxr resampler, run through the plugins at 48 kHz (some misbehave at 16 kHz)
and resampled down; a small FIFO keeps every output block exactly as long as its input.

After every plugin a guard checks the output: a slot that sends NaN, Inf or runaway
samples (beyond +60 dBFS; a broken filter's 1e22 comes before its NaN) is muted (passed
by), reset, and reported once in `drain_notices()`; none of it reaches the output.
Non-finite input samples are replaced by silence (and reported) before any plugin runs,
so that a plugin is never blamed for its input.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import queue
import threading
import time
from collections.abc import Callable

import numpy as np
import soxr

from engine.audio.pipeline import Stage
from engine.effects.instance import PluginInstance
from engine.effects.plugins import open_plugin
from engine.effects.spec import ChainSpec, ParameterValue, PluginSlot, check_value
from engine.errors import UserError
from engine.mulaw import SAMPLE_RATE

# Weight of the newest block in the moving averages `cost_ms` and `block_seconds`.
AVERAGE_WEIGHT = 0.05
# Spare samples at the head of the resampling FIFO, beyond the most soxr was seen to hold back.
FIFO_MARGIN = 32
PROBE_BLOCK = 16  # block size when measuring what soxr holds back: small blocks show the most
RUNAWAY_PEAK = 1000.0  # +60 dBFS: no effect sends this on purpose
MAX_BLOCK = 4096  # the longest block `process` takes by default, at 16 kHz (256 ms)


@dataclasses.dataclass
class _Slot:
    """A running slot: the plugin and what the chain does around it. `dry_tail` holds the
    last `instance.latency_samples` of the slot's input, float32 [channels, latency]: the
    dry signal of a dry/wet mix is delayed by the plugin's delay, so the two line up."""

    instance: PluginInstance
    bypass: bool
    mix: float
    muted: bool = False
    dry_tail: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((1, 0), np.float32))

    def delayed_dry(self, dry: np.ndarray) -> np.ndarray:
        """float32 [c, n] -> [c, n]: `dry` late by the plugin's latency, continuing the last block."""
        latency = self.instance.latency_samples
        if self.dry_tail.shape != (dry.shape[0], latency):  # the first block, or the plugin's delay changed
            self.dry_tail = np.zeros((dry.shape[0], latency), np.float32)
        if latency == 0:
            return dry
        joined = np.concatenate([self.dry_tail, dry], axis=1)
        self.dry_tail = joined[:, joined.shape[1] - latency :]
        return joined[:, : dry.shape[1]]

    def reset(self) -> None:
        """Silences the plugin and the dry delay, and un-mutes the slot."""
        self.instance.reset()
        self.dry_tail = np.zeros((1, 0), np.float32)
        self.muted = False


class EffectsChain:
    """Runs a `ChainSpec` block by block; state (tails) kept across blocks. One thread calls
    `process()`; any thread may call the setters (applied before the next block).

    Args:
      spec: the chain. Every plugin is loaded, warmed with one block of `max_block`
        samples (so no later block re-initialises it), given its state, then its parameters.
      max_block: the longest block `process` takes, at 16 kHz.

    Raises:
      UserError: a plugin is missing or cannot load, a parameter is unknown or out of range.

    Attributes:
      latency_samples: the chain's delay at 16 kHz: its active plugins' plus resampling's.
      slot_latency: each plugin's reported delay, at 16 kHz.
      cost_ms: moving average of the time `process` takes per block.
      block_seconds: moving average of the audio per processed block.
      muted: per slot, True once the guard muted it (NaN, Inf or runaway output).
    """

    def __init__(self, spec: ChainSpec, max_block: int = MAX_BLOCK):
        self.rate = spec.rate
        self.max_block = max_block
        self._factor = spec.rate / SAMPLE_RATE
        # soxr hands out its output in bursts: plugins get it in pieces of at most this.
        self._inner_block = inner_block = int(np.ceil(max_block * self._factor))
        self._slots: list[_Slot] = []
        try:
            for index, saved in enumerate(spec.slots):
                self._slots.append(self._open(index, saved, inner_block))
        except BaseException:
            self.close()
            raise
        self.slot_latency = [int(round(s.instance.latency_samples / self._factor)) for s in self._slots]
        self.cost_ms = 0.0
        self.block_seconds = 0.0
        self._blocks = 0
        self._lock = threading.Lock()  # held while a block runs, so a snapshot sees whole blocks
        self._pending: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._notices: collections.deque[str] = collections.deque()
        self._resamplers: tuple[soxr.ResampleStream, soxr.ResampleStream] | None  # set by _start_resampling
        self._fifo: np.ndarray
        self._start_resampling()

    # ----- the audio thread -------------------------------------------------------------

    def process(self, block: np.ndarray) -> np.ndarray:
        """float32 [n] -> float32 [n] at 16 kHz, n <= max_block; the chain's delay is
        `latency_samples`."""
        block = np.asarray(block, np.float32)
        if block.ndim != 1 or len(block) > self.max_block:
            raise ValueError(f"process takes float32 [n <= {self.max_block}], got shape {block.shape}")
        began = time.perf_counter()
        if not np.isfinite(block).all():
            block = np.where(np.isfinite(block), block, np.float32(0))
            self._notices.append("the chain's input held NaN or Inf: replaced by silence")
        with self._lock:
            while not self._pending.empty():
                self._pending.get_nowait()()
            out = self._process(block)
        weight = AVERAGE_WEIGHT if self._blocks else 1.0  # the first block starts the averages
        self._blocks += 1
        self.cost_ms += weight * (1000 * (time.perf_counter() - began) - self.cost_ms)
        self.block_seconds += weight * (len(block) / SAMPLE_RATE - self.block_seconds)
        return out

    def tail(self, seconds: float) -> np.ndarray:
        """float32 [seconds x 16 kHz]: what the chain rings out with, silence in."""
        total = int(round(seconds * SAMPLE_RATE))
        pieces = [
            self.process(np.zeros(min(self.max_block, total - done), np.float32))
            for done in range(0, total, self.max_block)
        ]
        return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)

    def _process(self, block: np.ndarray) -> np.ndarray:
        if self._resamplers is None:
            return self._run_slots(block)
        up, down = self._resamplers
        inner = up.resample_chunk(block)
        for start in range(0, len(inner), self._inner_block):
            piece = self._run_slots(inner[start : start + self._inner_block])
            self._fifo = np.concatenate([self._fifo, down.resample_chunk(piece)])
        if len(self._fifo) < len(block):  # soxr held back more than ever measured: a gap, not a crash
            self._fifo = np.concatenate([np.zeros(len(block) - len(self._fifo), np.float32), self._fifo])
        out, self._fifo = self._fifo[: len(block)], self._fifo[len(block) :]
        return out

    def _run_slots(self, mono: np.ndarray) -> np.ndarray:
        """float32 [n] -> [n] through every active slot, at the processing rate."""
        audio = mono[None, :]  # [channels, n]
        for index, slot in enumerate(self._slots):
            if slot.bypass or slot.muted:
                continue
            dry = slot.delayed_dry(audio)  # fed every block: turning the mix down later needs no warm-up
            wet = slot.instance.process(_channels(audio, slot.instance.input_channels))
            fault = _fault(wet)
            if fault:
                slot.reset()  # its state holds the fault too
                slot.muted = True
                self._notices.append(f"{slot.instance.info.ref.name} (slot {index + 1}) sent {fault}: muted")
                continue
            audio = wet if slot.mix >= 1 else slot.mix * wet + (1 - slot.mix) * dry
        return audio.mean(axis=0, dtype=np.float32) if audio.shape[0] > 1 else audio[0].astype(np.float32, copy=False)

    # ----- any thread -------------------------------------------------------------------

    def set_parameter(self, slot: int, name: str, value: ParameterValue) -> None:
        """Checks `value` now (UserError when unknown or out of range); applies it before the
        next block."""
        target = self._slot(slot)
        value = _checked(slot, target.instance, name, value)
        self._pending.put(lambda: target.instance.set_parameter(name, value))

    def set_bypass(self, slot: int, bypass: bool) -> None:
        """Bypassing a slot, or taking it back, also un-mutes it."""
        target = self._slot(slot)

        def apply() -> None:
            target.bypass, target.muted = bool(bypass), False

        self._pending.put(apply)

    def set_mix(self, slot: int, mix: float) -> None:
        if not 0 <= mix <= 1:
            raise UserError(f"mix must be in [0, 1], got {mix}")
        target = self._slot(slot)

        def apply() -> None:
            target.mix = float(mix)

        self._pending.put(apply)

    def reset(self) -> None:
        """Silences every tail and un-mutes every slot; parameters stay."""
        with self._lock:
            for slot in self._slots:
                slot.reset()
            self._start_resampling()

    def snapshot(self) -> ChainSpec:
        """The chain as it is now: current parameter values and plugin states."""
        with self._lock:
            while not self._pending.empty():
                self._pending.get_nowait()()
            slots = [
                PluginSlot(s.instance.info.ref, s.instance.parameter_values(), s.bypass, s.mix, s.instance.save_state())
                for s in self._slots
            ]
        return ChainSpec(slots, self.rate)

    def drain_notices(self) -> list[str]:
        """Messages for the user since the last call, e.g. "Reverb (slot 2) sent NaN or Inf: muted"."""
        notices = []
        while self._notices:
            notices.append(self._notices.popleft())
        return notices

    @property
    def muted(self) -> list[bool]:
        return [slot.muted for slot in self._slots]

    @property
    def latency_samples(self) -> int:
        active = sum(latency for latency, slot in zip(self.slot_latency, self._slots, strict=True) if not slot.bypass)
        return active + self._resampling_latency

    def close(self) -> None:
        for slot in self._slots:
            slot.instance.close()
        self._slots = []

    def __enter__(self) -> EffectsChain:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----- set-up -----------------------------------------------------------------------

    def _open(self, index: int, saved: PluginSlot, inner_block: int) -> _Slot:
        instance = open_plugin(saved.ref, self.rate, inner_block)
        try:
            if saved.state is not None:
                instance.load_state(saved.state)
            for name, value in saved.parameters.items():
                instance.set_parameter(name, _checked(index, instance, name, value))
        except BaseException:
            instance.close()
            raise
        return _Slot(instance, saved.bypass, saved.mix)

    def _start_resampling(self) -> None:
        """(Re)starts the soxr streams of the 48 kHz mode. soxr hands out its output in
        bursts; the FIFO starts with as much silence as the pair ever holds back, so every
        block comes out whole and the delay is constant: that silence is the latency."""
        self._resamplers = None
        self._fifo = np.zeros(0, np.float32)
        if self.rate != SAMPLE_RATE:
            self._resamplers = _resampler_pair(self.rate)
            self._fifo = np.zeros(_held_back(self.rate) + FIFO_MARGIN, np.float32)
        self._resampling_latency = len(self._fifo)

    def _slot(self, index: int) -> _Slot:
        if not 0 <= index < len(self._slots):
            raise UserError(f"no slot {index} in a chain of {len(self._slots)}")
        return self._slots[index]


def _resampler_pair(rate: int) -> tuple[soxr.ResampleStream, soxr.ResampleStream]:
    """Streams from 16 kHz up to `rate` and back."""
    return (
        soxr.ResampleStream(SAMPLE_RATE, rate, 1, dtype="float32", quality="HQ"),
        soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ"),
    )


@functools.cache
def _held_back(rate: int, seconds: float = 1.0) -> int:
    """The most 16 kHz samples a fresh up-and-down soxr pair holds back at once, measured
    by streaming `seconds` of silence through one in small blocks."""
    up, down = _resampler_pair(rate)
    silence = np.zeros(PROBE_BLOCK, np.float32)
    fed = given = most = 0
    for _ in range(int(seconds * SAMPLE_RATE) // PROBE_BLOCK):
        given += len(down.resample_chunk(up.resample_chunk(silence)))
        fed += PROBE_BLOCK
        most = max(most, fed - given)
    return most


def _checked(index: int, instance: PluginInstance, name: str, value: ParameterValue) -> ParameterValue:
    """`value` checked against the plugin's parameter `name`; UserError naming the slot."""
    where = f"slot {index + 1} ({instance.info.ref.name})"
    try:
        parameter = instance.info.parameter(name)
    except UserError as error:
        raise UserError(f"{where}: {error}") from None
    try:
        return check_value(parameter, value)
    except ValueError as error:
        raise UserError(f"{where}: {error}") from None


def _fault(audio: np.ndarray) -> str:
    """What is wrong with a plugin's output, or "" when nothing is."""
    peak = np.max(np.abs(audio), initial=0.0)  # NaN propagates through max: one pass finds both
    if not np.isfinite(peak):
        return "NaN or Inf"
    return f"runaway samples (peak {peak:.3g}, beyond +60 dBFS)" if peak > RUNAWAY_PEAK else ""


def _channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """float32 [c, n] as [channels, n]: mono duplicated, or several channels mixed down."""
    if audio.shape[0] == channels:
        return audio
    if channels == 1:
        return audio.mean(axis=0, keepdims=True, dtype=np.float32)
    return np.repeat(audio[:1], channels, axis=0)


def render_chain(spec: ChainSpec, audio: np.ndarray, tail_seconds: float = 2.0) -> np.ndarray:
    """Offline: float32 [n] at 16 kHz -> processed float32 [n + tail_seconds x 16 kHz], the
    chain's delay removed (output sample i lines up with input sample i)."""
    audio = np.asarray(audio, np.float32)
    with EffectsChain(spec) as chain:
        pieces = list(Stage(chain).aligned([audio], tail_seconds))
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
