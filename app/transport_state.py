"""The states the transport shows: the model loading, then one take's life."""

from __future__ import annotations

import enum


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
