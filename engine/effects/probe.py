"""The child process of a plugin scan: loads plugin bundles one after another and reports
each, so that a plugin that crashes or hangs takes down this process, not the caller.

    python -m engine.effects.probe ANSWERS < jobs      # one "FORMAT\tPATH" a line

Answers go to the file ANSWERS, one line each, flushed at once: "start\tPATH" before a
bundle is touched, then "ok\tPATH\tJSON" ({"plugins": [PluginInfo dicts], "failures":
[[uri, reason]]}: a bundle may hold many plugins, some broken) or "fail\tPATH\treason".
What plugins print goes to stdout/stderr, never into the answers.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from engine.effects import lv2, vst3
from engine.effects.instance import PluginLoadError
from engine.effects.spec import PluginFormat
from engine.errors import one_line

PROBE_RATE = 48000
PROBE_BLOCK = 512


def probe(plugin_format: PluginFormat, path: str) -> dict:
    """The bundle at `path`: its plugins that load and run one block of noise, and the
    reasons of those that do not."""
    noise = np.random.default_rng(0).uniform(-0.1, 0.1, PROBE_BLOCK).astype(np.float32)
    if plugin_format is PluginFormat.VST3:
        instance = vst3.open_vst3(path, PROBE_RATE, PROBE_BLOCK)
        instance.process(np.repeat(noise[None], instance.input_channels, axis=0))
        return {"plugins": [instance.info.to_dict()], "failures": []}
    working, failures = [], []
    for info in lv2.bundle_plugins(path):
        try:
            lv2_instance = lv2.open_lv2(info, PROBE_RATE, PROBE_BLOCK)
        except PluginLoadError as error:
            failures.append([info.ref.id, one_line(error).removeprefix(f"{info.ref.id}: ")])
            continue
        lv2_instance.process(np.repeat(noise[None], lv2_instance.input_channels, axis=0))
        lv2_instance.close()
        working.append(info.to_dict())
    return {"plugins": working, "failures": failures}


def main() -> None:
    answers = open(sys.argv[1], "a", buffering=1, encoding="utf-8")
    for line in sys.stdin:
        plugin_format, path = line.rstrip("\n").split("\t", 1)
        answers.write(f"start\t{path}\n")
        try:
            found = probe(PluginFormat(plugin_format), path)
        except PluginLoadError as error:
            answers.write(f"fail\t{path}\t{one_line(error)}\n")
            continue
        except Exception as error:  # whatever a third-party plugin raises is that plugin's failure
            answers.write(f"fail\t{path}\t{type(error).__name__}: {one_line(error)}\n")
            continue
        answers.write(f"ok\t{path}\t{json.dumps(found)}\n")


if __name__ == "__main__":
    main()
