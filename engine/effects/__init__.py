"""Effects on the generated stream: pedalboard's built-ins, VST3 and LV2 plugins (docs/spec.md §9).

    from engine.effects import ChainSpec, EffectsChain, load_catalog
    catalog = load_catalog()                  # built-ins + scanned plugins (cached)
    chain = EffectsChain(ChainSpec.load("chain.json"))
    out = chain.process(block)                # float32 [n] -> [n] at 16 kHz

One concept a module: `spec` (what a chain is, JSON presets), `chain` (running it),
`builtin`, `vst3`, `lv2` (the formats), `scan` (finding plugins in a child process),
`lv2_ui` (an LV2 plugin's X11 editor, embedded), `vst3_editor` (a VST3 editor's child process).
"""

from engine.effects.builtin import builtin_plugins
from engine.effects.chain import EffectsChain, render_chain
from engine.effects.plugins import describe
from engine.effects.scan import Catalog, ScanFailure, load_catalog
from engine.effects.spec import (
    ChainSpec,
    ParameterInfo,
    ParameterKind,
    PluginFormat,
    PluginInfo,
    PluginRef,
    PluginSlot,
)

__all__ = [
    "Catalog",
    "ChainSpec",
    "EffectsChain",
    "ParameterInfo",
    "ParameterKind",
    "PluginFormat",
    "PluginInfo",
    "PluginRef",
    "PluginSlot",
    "ScanFailure",
    "builtin_plugins",
    "describe",
    "load_catalog",
    "render_chain",
]
