"""The one reader of audio files (seed audio, data sets, the app's seed audio panel).

    from engine.audio_file import read_audio
    audio = read_audio("piano.flac")  # float32 [n], mono, 16 kHz

Any format libsndfile reads (wav, flac, ogg, mp3, aiff, ...), any channel count, rate
and sample format. The file is read in blocks, each mixed to mono and resampled to the
target rate with a streaming soxr resampler, so memory holds the mono result, not the
decoded file: an hour of 8 channels at 192 kHz is 22 GB as float32, its 16 kHz mono 230 MB.
Every failure is an `AudioFileError` whose message is one line naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import soxr

from engine.errors import UserError
from engine.mulaw import SAMPLE_RATE

BLOCK_FRAMES = 1 << 16


class AudioFileError(UserError):
    """An audio file cannot be used; the message says why, in one line."""


def read_audio(path: str | Path, rate: int = SAMPLE_RATE, mono: bool = True) -> np.ndarray:
    """Reads an audio file as float32 at `rate`.

    Args:
      path: the file.
      rate: the rate to return, in Hz (soxr high-quality resampling when it differs).
      mono: mix the channels down (else keep them: a take's voices are measured apart).

    Returns:
      float32 [n]: the channels' mean, resampled; or [channels, n] when not `mono`.

    Raises:
      AudioFileError: not found, a folder, empty, too short for one sample at `rate`, not
        an audio file, or NaN/Inf samples.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise AudioFileError(f"{path}: not found; check the path")
    if path.is_dir():
        raise AudioFileError(f"{path}: is a folder; choose an audio file in it")
    if path.stat().st_size == 0:
        raise AudioFileError(f"{path}: is empty (0 bytes)")
    try:
        with soundfile.SoundFile(str(path)) as file:
            source_rate, frames = file.samplerate, file.frames
            channels = 1 if mono else file.channels
            resampler = None if source_rate == rate else soxr.ResampleStream(source_rate, rate, channels, quality="HQ")
            pieces = []
            for block in file.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
                block = block.mean(axis=1, keepdims=True, dtype=np.float32) if mono else block
                if not np.isfinite(block).all():
                    raise AudioFileError(f"{path}: holds NaN or infinite samples; repair or re-export it")
                pieces.append(block if resampler is None else resampler.resample_chunk(block))
            if resampler is not None:
                pieces.append(resampler.resample_chunk(np.zeros((0, channels), np.float32), last=True))
    except (RuntimeError, OSError) as error:  # soundfile.LibsndfileError is a RuntimeError
        reason = " ".join(str(error).split())
        raise AudioFileError(f"{path}: not an audio file libsndfile reads ({reason})") from None
    audio = np.concatenate(pieces).T if pieces else np.zeros((channels, 0), np.float32)  # [channels, n]
    if audio.size == 0:
        if frames:
            raise AudioFileError(f"{path}: too short ({frames} sample(s) at {source_rate} Hz is not one at {rate} Hz)")
        raise AudioFileError(f"{path}: is empty (no audio samples)")
    return (audio[0] if mono else audio).astype(np.float32, copy=False)
