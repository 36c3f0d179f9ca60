"""The real plugins the effects tests use, from Debian packages that scripts/setup installs;
`require_plugins()` skips a test on a developer's machine without them and fails it in CI."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import require

from engine.effects import PluginFormat, PluginRef

VST3_REVERB = PluginRef(PluginFormat.VST3, str(Path(sys.prefix) / "plugins/vst3/DragonflyHallReverb.vst3"),
                        "Dragonfly Hall Reverb")  # dragonfly-reverb-vst3 (trixie), unpacked by scripts/setup
LV2_REVERB = PluginRef(PluginFormat.LV2, "https://github.com/michaelwillis/dragonfly-reverb", "Dragonfly Hall Reverb")
LV2_DELAY = PluginRef(PluginFormat.LV2, "http://drobilla.net/plugins/mda/Delay", "MDA Delay")  # mda-lv2
# swh-lv2's waveshaper sends NaN for its lowest shape (-10), a value in its declared range.
LV2_SHAPER = PluginRef(PluginFormat.LV2, "http://plugin.org.uk/swh-plugins/shaper", "Wave shaper")
BUILTIN_REVERB = PluginRef(PluginFormat.BUILTIN, "Reverb", "Reverb")

BUNDLES = {
    "dragonfly-reverb-vst3 (scripts/setup unpacks it)": Path(VST3_REVERB.id),
    "dragonfly-reverb-lv2": Path("/usr/lib/lv2/DragonflyHallReverb.lv2"),
    "mda-lv2": Path("/usr/lib/lv2/mda.lv2"),
    "swh-lv2": Path("/usr/lib/lv2/shaper-swh.lv2"),
    "liblilv-0-0": Path("/usr/lib/x86_64-linux-gnu/liblilv-0.so.0"),
}


def require_plugins() -> None:
    missing = [name for name, path in BUNDLES.items() if not path.exists()]
    require(f"plugin packages missing: {', '.join(missing)}" if missing else "")
