"""From a `PluginRef` to its description and to a running instance, whatever the format."""

from __future__ import annotations

from engine.effects import builtin, lv2, vst3
from engine.effects.instance import PluginInstance, PluginLoadError
from engine.effects.spec import PluginFormat, PluginInfo, PluginRef
from engine.errors import UserError


def describe(ref: PluginRef) -> PluginInfo:
    """Loads the plugin to list its parameters; UserError (one line) when it cannot."""
    try:
        if ref.format is PluginFormat.BUILTIN:
            info = builtin.builtin_info(ref.id)
            if info is None:
                known = ", ".join(i.ref.id for i in builtin.builtin_plugins())
                raise UserError(f"no built-in effect {ref.id!r}; the built-ins: {known}")
            return info
        if ref.format is PluginFormat.VST3:
            return vst3.describe_vst3(vst3.load_vst3(ref.id), ref.id)
        return lv2.describe_lv2(ref.id)
    except PluginLoadError as error:
        raise UserError(f"cannot load {ref.format} plugin {ref.name!r}: {error}") from None


def open_plugin(ref: PluginRef, rate: int, max_block: int) -> PluginInstance:
    """A running instance at `rate`, warmed with one `max_block` block (its description is
    `instance.info`); UserError when it cannot load."""
    try:
        if ref.format is PluginFormat.VST3:  # described from the one load: loading a VST3 takes long
            return vst3.open_vst3(ref.id, rate, max_block)
        info = describe(ref)
        if ref.format is PluginFormat.BUILTIN:
            return builtin.open_builtin(info, rate, max_block)
        return lv2.open_lv2(info, rate, max_block)
    except PluginLoadError as error:
        raise UserError(f"cannot load {ref.format} plugin {ref.name!r}: {error}") from None
