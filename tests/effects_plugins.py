"""The real plugins the effects tests use, from Debian packages that scripts/setup installs;
`require_plugins()` skips a test on a developer's machine without them and fails it in CI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import require

from engine.effects import PluginFormat, PluginRef

VST3_REVERB = PluginRef(
    PluginFormat.VST3, str(Path(sys.prefix) / "plugins/vst3/DragonflyHallReverb.vst3"), "Dragonfly Hall Reverb"
)  # dragonfly-reverb-vst3 (trixie), unpacked by scripts/setup
LV2_REVERB = PluginRef(PluginFormat.LV2, "https://github.com/michaelwillis/dragonfly-reverb", "Dragonfly Hall Reverb")
LV2_DELAY = PluginRef(PluginFormat.LV2, "http://drobilla.net/plugins/mda/Delay", "MDA Delay")  # mda-lv2
# swh-lv2's waveshaper sends NaN for its lowest shape (-10), a value in its declared range.
LV2_SHAPER = PluginRef(PluginFormat.LV2, "http://plugin.org.uk/swh-plugins/shaper", "Wave shaper")
# swh-lv2's lookahead limiter reports its lookahead as latency (80 samples at 16 kHz); below
# its limit it is a pure delay.
LV2_LIMITER = PluginRef(
    PluginFormat.LV2, "http://plugin.org.uk/swh-plugins/fastLookaheadLimiter", "Fast Lookahead limiter"
)
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


# Test plugins built from C here (tests/lv2/*.c), as a crashing or a worker-using plugin
# is not in Debian's bundles: "NAME.lv2" bundles with one mono in, one mono out.
LV2_SOURCES = Path(__file__).parent / "lv2"
MANIFEST = """\
@prefix lv2: <http://lv2plug.in/ns/lv2core#> .
@prefix doap: <http://usefulinc.com/ns/doap#> .
<{uri}> a lv2:Plugin ; doap:name "{name}" ; lv2:binary <{name}.so> ;{extra}
  lv2:port [ a lv2:AudioPort, lv2:InputPort ; lv2:index 0 ; lv2:symbol "in" ; lv2:name "In" ] ,
           [ a lv2:AudioPort, lv2:OutputPort ; lv2:index 1 ; lv2:symbol "out" ; lv2:name "Out" ]{ports} .
"""


def build_lv2(folder: Path, name: str, uri: str, source: str | None, extra: str = "", ports: str = "") -> Path:
    """Builds bundle `folder`/NAME.lv2 from tests/lv2/SOURCE.c (or, with source None, a
    binary of text: a damaged bundle). Needs a C compiler (CI has one: wheels build there)."""
    bundle = folder / f"{name}.lv2"
    bundle.mkdir(parents=True)
    binary = bundle / f"{name}.so"
    if source is None:
        binary.write_text("not a shared library\n")
    else:
        compiler = shutil.which("cc")
        require("" if compiler else "no C compiler to build the test LV2 plugins")
        subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", binary, LV2_SOURCES / f"{source}.c"], check=True)
    (bundle / "manifest.ttl").write_text(MANIFEST.format(uri=uri, name=name, extra=extra, ports=ports))
    return bundle
