"""The states the window shows: the model's, and the transport's."""

from __future__ import annotations

import enum


class ModelStatus(enum.StrEnum):
    """The checkpoint behind the Generate button."""

    NONE = "none"
    LOADING = "loading"
    LOADED = "loaded"
    FAILED = "failed"


class TransportState(enum.StrEnum):
    """A take runs compiling -> buffering -> playing (or rendering, without an audio
    device) -> stopping -> idle, or ends in error (app/session.py); loading is the model's."""

    IDLE = "idle"
    LOADING = "loading"
    COMPILING = "compiling"
    BUFFERING = "buffering"
    PLAYING = "playing"
    RENDERING = "rendering"
    STOPPING = "stopping"
    ERROR = "error"
