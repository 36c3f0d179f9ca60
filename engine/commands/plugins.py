"""`harmonic plugins scan|list`: the effects that can go in a chain (built-ins, VST3, LV2).

engine.effects is imported when a command runs: it loads pedalboard.
"""

from __future__ import annotations

import argparse

from engine.errors import UserError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("plugins", help="list the effects a chain can use (built-in, VST3, LV2)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    scan = actions.add_parser("scan", help="scan the plugin folders again and list what loads and what fails")
    scan.set_defaults(run=run_scan)
    listing = actions.add_parser("list", help="list the plugins (cached scan), or one plugin's parameters")
    listing.add_argument(
        "--params", metavar="NAME", help="list the parameters of the plugin whose name, id or URI this is"
    )
    listing.set_defaults(run=run_list)


def run_scan(args: argparse.Namespace) -> int:
    from engine.effects import load_catalog

    catalog = load_catalog(rescan=True)
    _print_plugins(catalog.plugins)
    if catalog.failures:
        print(f"\n{len(catalog.failures)} failed to load:")
        for failure in catalog.failures:
            print(f"  {failure.format:<7} {failure.path_or_uri}: {failure.reason}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from engine.effects import ParameterKind, load_catalog

    catalog = load_catalog()
    if not args.params:
        _print_plugins(catalog.plugins)
        return 0
    matches = [p for p in catalog.plugins if args.params in (p.ref.name, p.ref.id)]
    if not matches:
        raise UserError(f"no plugin named {args.params!r}; `harmonic plugins list` lists them")
    for info in matches:
        print(f"{info.ref.name} ({info.ref.format}, {info.ref.id})")
        print(f"  {'name':<24} {'kind':<6} {'range':<26} {'default':<12} label")
        for p in info.parameters:
            span = " | ".join(p.choices) if p.choices else f"{p.minimum:g} .. {p.maximum:g} {p.unit}".strip()
            default = f"{p.default:.4g}" if p.kind is ParameterKind.FLOAT else str(p.default)
            print(f"  {p.name:<24} {p.kind:<6} {span:<26} {default:<12} {p.label}")
    return 0


def _print_plugins(plugins) -> None:
    print(f"{'name':<44} {'vendor':<32} {'format':<7} {'params':>6}")
    for info in plugins:
        print(f"{info.ref.name[:44]:<44} {info.vendor[:32]:<32} {info.ref.format:<7} {len(info.parameters):>6}")
    print(f"{len(plugins)} plugins")
