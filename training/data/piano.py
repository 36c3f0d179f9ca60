"""The piano set: music21's corpus (see `training.data.score_midi`) played by several pianos.

Each work's MIDI is rendered by TinySoundFont (the `tinysoundfont` wheel: no system
library, so it renders on a bare GPU machine too) at 32 kHz, with one of several piano
timbres chosen per work from its name: a soundfont piano, a velocity scale, and half of
the works (`ROOM_SHARE`, a build option) in a synthetic room (exponentially decaying
noise, a common reverberation model). The render is resampled to 16 kHz with soxr,
normalised to the piece's peak (so quiet passages stay quiet, unlike per-clip min-max
scaling) and trimmed of its silent lead-in and of what follows its release. Works are
split train/valid/test by name, so a split never changes when more works are added; each
split's works are then played one after another, half a second apart (`GAP_SECONDS`, a
build option), and cut into 8 s clips. A clip that ends as a work ends goes on into the
next: the model learns that music follows an ending, where clips cut per work taught it
that an ending is followed by digital silence for good (its takes fell silent for seconds
at a time).

The pianos are subsets of Debian's soundfonts (`make_soundfonts`, a few MB): FluidR3's
Yamaha grand and bright grand, TimGM6mb's and csound's piano 1. MuseScore General's
grand is kept out of training: it renders the hold-out set that tests how the model
copes with a piano it never heard.
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os
import zlib
from pathlib import Path

import numpy as np
import soxr
import tinysoundfont
from tinysoundfont.midi import NoteOn, ProgramChange, load
from tqdm import tqdm

from engine.mulaw import SILENCE, decode, encode
from training.data.audio_folder import cut_clips
from training.data.manifest import SAMPLE_RATE, DatasetWriter, split_of
from training.data.score_midi import read_index
from training.data.soundfont import extract_presets
from training.files import replacing

CLIP_SECONDS = 8
RENDER_RATE = 32_000  # TinySoundFont interpolates linearly: render above 16 kHz, then resample
PEAK = 0.9  # the piece's peak after normalising
TAIL_SECONDS = 2.0  # rendered past the last event, for the release and the room
AUDIBLE = 1e-3  # -60 dB: a render's quieter lead-in and tail are trimmed
GAP_SECONDS = 0.5  # silence between one work and the next in a split's stream (the default)
QUIET = 1e-2  # -40 dBFS: a break goes only where the 100 ms before a note are below this RMS
ONSET = 3e-2  # -30 dBFS: ... and the note's first 10 ms above it
BREAK_FADE_SECONDS = 0.05  # the quiet sound before a break fades out over this
ROOM_SHARE = 0.5  # the share of works played in a synthetic room (the default)


@dataclasses.dataclass(frozen=True)
class Piano:
    """One soundfont piano: the subset file's name and its General MIDI program."""

    soundfont: str
    program: int
    source: str  # the Debian soundfont it is cut from


TRAINING_PIANOS = (
    Piano("FluidR3_GM-pianos.sf2", 0, "/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Piano("FluidR3_GM-pianos.sf2", 1, "/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Piano("TimGM6mb-pianos.sf2", 0, "/usr/share/sounds/sf2/TimGM6mb.sf2"),
    Piano("sf_GMbank-pianos.sf2", 0, "/usr/share/sounds/sf2/sf_GMbank.sf2"),
)
HOLDOUT_PIANO = Piano("MuseScore_General_Lite-pianos.sf3", 0, "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")


@dataclasses.dataclass(frozen=True)
class Performance:
    """How one work is played: which piano, how hard, in which room."""

    piano: Piano
    velocity_scale: float
    room_seconds: float  # reverberation time RT60; 0 = dry
    room_mix: float

    @classmethod
    def for_work(cls, work: str, pianos: tuple[Piano, ...], room_share: float = ROOM_SHARE) -> Performance:
        """The work's piano, velocity and room, drawn from its name: the same in every build, and
        a smaller `room_share` only takes works out of their rooms."""
        rng = np.random.default_rng(zlib.crc32(work.encode()))
        reverb = rng.random() < room_share
        return cls(
            pianos[int(rng.integers(len(pianos)))],
            float(rng.uniform(0.6, 1.15)),
            float(rng.uniform(0.3, 1.6)) if reverb else 0.0,
            float(rng.uniform(0.1, 0.35)) if reverb else 0.0,
        )


def make_soundfonts(out: str | Path, pianos: tuple[Piano, ...] = TRAINING_PIANOS + (HOLDOUT_PIANO,)) -> Path:
    """Cuts the pianos out of the system soundfonts into `out` (skips those present)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in sorted({p.soundfont for p in pianos}):
        if (out / name).is_file():
            continue
        source = next(p.source for p in pianos if p.soundfont == name)
        if not os.path.isfile(source):
            raise FileNotFoundError(f"{source} not found: scripts/setup installs Debian's soundfont packages")
        extract_presets(source, out / name, [(0, p.program) for p in pianos if p.soundfont == name])
    return out


def room_response(seconds: float, rng: np.random.Generator, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A diffuse room: Gaussian noise under an exponential decay of `seconds` to -60 dB."""
    n = int(seconds * rate)
    decay = np.exp(-6.9078 * np.arange(n) / n)  # ln(1000): -60 dB at n
    response = rng.standard_normal(n) * decay
    return response / np.sqrt(np.sum(response**2))


def render(midi: str | Path, soundfonts: str | Path, performance: Performance) -> np.ndarray:
    """One work as float32 mono at 16 kHz, normalised to PEAK (silence stays zeros)."""
    from scipy.signal import fftconvolve  # noqa: PLC0415 - 0.5 s that only rendering (in the workers) needs

    synth = tinysoundfont.Synth(samplerate=RENDER_RATE)
    sfid = synth.sfload(str(Path(soundfonts) / performance.piano.soundfont))
    events = load(str(midi))
    for event in events:
        if isinstance(event.action, NoteOn) and event.action.velocity > 0:
            event.action.velocity = int(np.clip(round(event.action.velocity * performance.velocity_scale), 1, 127))
        elif isinstance(event.action, ProgramChange):
            event.action.program = performance.piano.program
        event.channel = 0 if event.channel == 9 else event.channel  # no drum kit
    for channel in range(16):
        synth.program_select(channel, sfid, 0, performance.piano.program)
    sequencer = tinysoundfont.Sequencer(synth)
    sequencer.add(events)
    blocks = []
    while not sequencer.is_empty():
        blocks.append(np.frombuffer(synth.generate(RENDER_RATE), np.float32).copy())
    blocks.append(np.frombuffer(synth.generate(int(TAIL_SECONDS * RENDER_RATE)), np.float32).copy())
    audio = soxr.resample(np.concatenate(blocks).reshape(-1, 2).mean(axis=1), RENDER_RATE, SAMPLE_RATE)
    if performance.room_seconds:
        rng = np.random.default_rng(zlib.crc32(str(midi).encode()))
        wet = fftconvolve(audio, room_response(performance.room_seconds, rng))[: len(audio)]
        audio = (1 - performance.room_mix) * audio + performance.room_mix * wet
    peak = float(np.abs(audio).max())
    if not np.isfinite(peak):
        raise ValueError("the render holds NaN or infinite samples")
    return (audio * (PEAK / peak) if peak > 0 else audio).astype(np.float32)


def trim_silence(audio: np.ndarray) -> np.ndarray:
    """`audio` [T] without its leading and trailing samples below AUDIBLE."""
    loud = np.flatnonzero(np.abs(audio) >= AUDIBLE)
    return audio[loud[0] : loud[-1] + 1] if loud.size else audio[:0]


def split_clips(
    works: list[tuple[str, np.ndarray]], clip_len: int, gap_seconds: float = GAP_SECONDS
) -> list[tuple[np.ndarray, int, str]]:
    """One split's works (name, mu-law tokens uint8 [T]) played in turn, gap_seconds apart,
    cut into clips: (tokens uint8 [clip_len], length, the work the clip starts in). A last
    clip under 1 s is dropped, a shorter last one padded with silence; a clip with nothing
    audible (a work's long rest) is dropped."""
    works = [(name, tokens) for name, tokens in works if tokens.size]
    if not works:
        return []
    gap = np.full(int(gap_seconds * SAMPLE_RATE), SILENCE, np.uint8)
    stream = np.concatenate([part for _, tokens in works for part in (tokens, gap)][:-1])
    starts = np.cumsum([0] + [tokens.size + gap.size for _, tokens in works[:-1]])
    clips = []
    for index, piece in enumerate(cut_clips(stream, clip_len, SAMPLE_RATE)):
        if np.abs(decode(piece)).max() < AUDIBLE:
            continue
        begin = index * clip_len
        tokens = np.full(clip_len, SILENCE, np.uint8)
        tokens[: piece.size] = piece
        clips.append((tokens, piece.size, works[int(np.searchsorted(starts, begin, side="right")) - 1][0]))
    return clips


def add_breaks(
    tokens: np.ndarray, mean_seconds: float, gap_seconds: float, seed: int
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A work's mu-law tokens uint8 [T] with pauses added, as a pianist stops and starts
    again: before some of the notes that follow 100 ms quieter than `QUIET` (the sound
    before has decayed), about one every `mean_seconds` of music (exponential spacing),
    that quiet sound fades out over `BREAK_FADE_SECONDS`, then 0.5-1.5 x `gap_seconds`
    of digital silence, then the note. Returns the tokens uint8 [T + pauses] and each
    pause's (place in `tokens`, length in samples).

    Why: the data's only long silences are the gaps between works, one every few
    minutes, so a model meets long silence almost only in its own takes and does not
    leave it (docs/results.md, "Session 12"); pauses of no fixed length before real
    onsets give it many silences that end in a note."""
    hop = SAMPLE_RATE // 100  # 10 ms frames
    audio = decode(tokens.astype(np.int32))
    frames = audio[: audio.size // hop * hop].reshape(-1, hop)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    before = 10  # frames: 100 ms
    loudest_before = np.full(rms.size, np.inf)
    if rms.size > before:
        loudest_before[before:] = np.lib.stride_tricks.sliding_window_view(rms, before)[:-1].max(axis=1)
    onsets = np.flatnonzero((rms >= ONSET) & (loudest_before < QUIET))
    rng = np.random.default_rng(seed)
    cuts, due = [], rng.exponential(mean_seconds) * SAMPLE_RATE
    for frame in onsets:
        cut = int(frame - 1) * hop  # the quiet frame before the onset's goes after the pause
        if cut >= due:
            cuts.append(cut)
            due = cut + rng.exponential(mean_seconds) * SAMPLE_RATE
    fade = np.linspace(1.0, 0.0, int(BREAK_FADE_SECONDS * SAMPLE_RATE), dtype=np.float32)
    parts, pauses, start = [], [], 0
    for cut in cuts:
        piece = tokens[start:cut].copy()
        tail = piece[-fade.size :]
        piece[-tail.size :] = encode(decode(tail.astype(np.int32)) * fade[-tail.size :])
        pauses.append((cut, int(rng.uniform(0.5, 1.5) * gap_seconds * SAMPLE_RATE)))
        parts += [piece, np.full(pauses[-1][1], SILENCE, np.uint8)]
        start = cut
    parts.append(tokens[start:])
    return np.concatenate(parts).astype(np.uint8), pauses


def render_key(work: str, midi: str | Path, performance: Performance) -> str:
    """Names a work's render: its score's bytes, how it is played and the render's settings."""
    digest = hashlib.sha1(repr((work, performance, RENDER_RATE, SAMPLE_RATE, PEAK, TAIL_SECONDS, AUDIBLE)).encode())
    digest.update(Path(midi).read_bytes())
    return digest.hexdigest()


def cached_render(cache: Path, key: str) -> np.ndarray | None:
    """A work's mu-law tokens from the render cache, or None."""
    try:
        return np.load(cache / f"{key}.npy")
    except (FileNotFoundError, ValueError, EOFError):  # absent, or a copy cut short outside this code
        return None


def cache_render(cache: Path, key: str, tokens: np.ndarray) -> None:
    """Keeps a work's tokens, whole or not at all (`training.files.replacing`)."""
    cache.mkdir(parents=True, exist_ok=True)
    with replacing(cache / f"{key}.npy") as (temporary,), open(temporary, "wb") as file:
        np.save(file, tokens)


def _render_job(job):
    """(work, its mu-law tokens uint8 [T] or None, error or None). Encoded in the worker:
    a quarter of the float32 audio's bytes goes back through the pool's pipe, and the
    parent, one process for every worker, only joins the streams."""
    work, midi, soundfonts, performance = job
    try:
        audio = render(midi, soundfonts, performance)
        return work, encode(trim_silence(audio)).astype(np.uint8), None
    except Exception as error:  # a damaged MIDI file or an odd event: list it, go on
        return work, None, f"{type(error).__name__}: {str(error)[:200]}"


def choose_works(works: list[dict], limit: int, max_hours: float) -> list[dict]:
    """Works taken in turn from each collection of the corpus (composer or song book,
    in a fixed pseudo-random order inside each), cut at `limit` works or `max_hours` of
    score time: every collection is heard, none dominates a capped build, and a smaller
    build is a subset of a larger one."""
    groups: dict[str, list[dict]] = {}
    for w in sorted(works, key=lambda w: zlib.crc32(w["id"].encode())):
        groups.setdefault(w["id"].split("/")[0], []).append(w)
    ordered = [g[i] for i in range(max(map(len, groups.values()), default=0)) for g in groups.values() if i < len(g)]
    if limit:
        ordered = ordered[:limit]
    if max_hours:
        total, cut = 0.0, []
        for w in ordered:
            if total >= max_hours * 3600:
                break
            cut.append(w)
            total += w["seconds"]
        ordered = cut
    return ordered


def build_piano(
    out: str | Path,
    midi_dir: str | Path,
    soundfonts: str | Path,
    limit: int = 0,
    max_hours: float = 0.0,
    workers: int = 0,
    progress: bool = True,
    pianos: tuple[Piano, ...] = TRAINING_PIANOS,
    split: str | None = None,
    gap_seconds: float = GAP_SECONDS,
    render_cache: str | Path | None = None,
    room_share: float = ROOM_SHARE,
    breaks_seconds: float = 0.0,
) -> dict:
    """Renders the exported works of `midi_dir` with `pianos` into a data set at `out`;
    returns its manifest. `split` puts every work into that split (a hold-out set);
    by default works are split by name. `gap_seconds` of digital silence lie between one
    work and the next (docs/results.md, "Leaving silence": a model does not time them).
    `render_cache` keeps each work's render, so that another build of the same works (another
    gap, more hours) renders only what it has not rendered before. `room_share` of the works
    are played in a synthetic room (0: every work dry). `breaks_seconds` > 0 adds pauses
    inside the works, about one every so many seconds of music (`add_breaks`)."""
    if gap_seconds < 0:
        raise ValueError(f"--gap-seconds must be >= 0, got {gap_seconds}")
    if breaks_seconds < 0 or (breaks_seconds and not gap_seconds):
        raise ValueError(f"--breaks-seconds must be 0 (none) or > 0 with a gap, got {breaks_seconds}")
    if not 0 <= room_share <= 1:
        raise ValueError(f"--room-share must lie in [0, 1], got {room_share}")
    index = read_index(midi_dir)
    works = choose_works(index["works"], limit, max_hours)
    if not works:
        raise RuntimeError(f"{midi_dir} lists no works")
    writer = DatasetWriter(out, CLIP_SECONDS * SAMPLE_RATE, "piano", "none")
    cache = Path(render_cache) if render_cache else None
    failed, streams, jobs, keys = [], {}, [], {}
    for w in works:
        midi = str(Path(midi_dir) / w["file"])
        performance = Performance.for_work(w["id"], pianos, room_share)
        if cache:
            keys[w["id"]] = render_key(w["id"], midi, performance)
            tokens = cached_render(cache, keys[w["id"]])
            if tokens is not None:
                streams[w["id"]] = tokens
                continue
        jobs.append((w["id"], midi, str(soundfonts), performance))
    # Unordered: a long sonata does not hold up the works behind it; the streams are joined
    # in the works' order at the end, so the same works always give the same arrays.
    processes = min(workers or os.cpu_count() or 1, len(jobs))
    with multiprocessing.get_context("spawn").Pool(max(processes, 1), maxtasksperchild=50) as pool:
        for work, tokens, error in tqdm(
            pool.imap_unordered(_render_job, jobs), total=len(jobs), desc="works", unit="work", disable=not progress
        ):
            if error:
                failed.append({"work": work, "error": error})
                continue
            streams[work] = tokens
            if cache:
                cache_render(cache, keys[work], tokens)
    breaks = 0
    for name in ("train", "valid", "test"):
        kept = [w["id"] for w in works if w["id"] in streams and (split or split_of(w["id"])) == name]
        kept_streams = [(work, streams.pop(work)) for work in kept]
        for i, (work, tokens) in enumerate(kept_streams if breaks_seconds else []):
            paused, pauses = add_breaks(tokens, breaks_seconds, gap_seconds, zlib.crc32(work.encode()))
            kept_streams[i], breaks = (work, paused), breaks + len(pauses)
        for tokens, length, source in split_clips(kept_streams, writer.clip_len, gap_seconds):
            writer.add_tokens(name, tokens, length, source=source)
    if writer.count() == 0:
        raise RuntimeError(f"no work rendered; first errors: {failed[:3]}")
    return writer.finish(
        source="music21 corpus rendered by TinySoundFont: "
        + ", ".join(f"{p.soundfont} program {p.program}" for p in pianos),
        scaling=f"each work normalised to a peak of {PEAK}",
        joined=f"each split's works in turn, trimmed below {AUDIBLE}, {gap_seconds} s apart",
        gap_seconds=gap_seconds,
        room_share=room_share,
        breaks_seconds=breaks_seconds,
        breaks=breaks,
        works=len(works) - len(failed),
        failed=sorted(failed, key=lambda f: f["work"]),
        split_by=f"all works in {split}" if split else "work",
    )
