"""Settings that persist between runs, on QSettings.

`Settings()` uses the user's native settings store ("HarmonicRNN"/"HarmonicRNN Studio");
`$HARMONIC_SETTINGS` or `Settings(path)` use an INI file instead (tests do). A key that was
renamed is still read under its former name until it is next saved (`FORMER_KEYS`).
"""

from __future__ import annotations

import os

from PyQt6.QtCore import QSettings

DEFAULTS = {
    "controls/temperature": 1.0,
    "controls/top_p": 1.0,
    "controls/random_seed": 0,
    "controls/voices": 1,
    "controls/endless": True,
    "controls/seconds": 10.0,
    "controls/watchdog": True,  # a musician wants music: a healthy take plays the same with it
    "audio/output_device": "",
    "audio/latency": "default",
    "audio/input_device": "",
    "model/checkpoint": "",
    "model/opened": [],
    "export/format": "wav",
    "export/rate": 16000,
    "export/mono": False,
    "export/folder": "",
    "export/audio": "dry",
    "effects/chain": "",  # the effects panel's chain (ChainSpec JSON), restored at start
    "window/geometry": None,
    "window/state": None,
}
# key -> the name it was saved under by earlier versions
FORMER_KEYS = {
    "controls/random_seed": "controls/seed",
}


class Settings:
    def __init__(self, path: str | None = None):
        path = path or os.environ.get("HARMONIC_SETTINGS")
        if path:
            self._q = QSettings(str(path), QSettings.Format.IniFormat)
        else:
            self._q = QSettings("HarmonicRNN", "HarmonicRNN Studio")

    def get(self, key: str, default=None):
        fallback = DEFAULTS.get(key) if default is None else default
        value = self._q.value(key)
        if value is None and key in FORMER_KEYS:
            value = self._q.value(FORMER_KEYS[key])
        if value is None:
            return fallback
        try:
            if isinstance(fallback, bool):
                return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
            if isinstance(fallback, int):
                return int(value)
            if isinstance(fallback, float):
                return float(value)
            if isinstance(fallback, list):
                if isinstance(value, str):
                    return [value] if value else []
                return list(value)
        except (TypeError, ValueError):
            return fallback
        return value

    def set(self, key: str, value) -> None:
        self._q.setValue(key, value)

    def sync(self) -> None:
        self._q.sync()
