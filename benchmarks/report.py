"""Writes one script's results into its own section of docs/benchmarks.md.

Each section sits between `<!-- begin: NAME -->` and `<!-- end: NAME -->`, so scripts run
on different machines update their tables without touching the others.
"""

from __future__ import annotations

import datetime
import platform
import re
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nEach section is written by the script it names; rerun the command to refresh it.\n"


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub-flavoured markdown table; cells are formatted with str()."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(device: str) -> str:
    return (
        f"Measured {datetime.date.today().isoformat()} on {device} "
        f"(Python {platform.python_version()}, {platform.machine()})."
    )


def write_section(name: str, title: str, command: str, body: str, doc: Path = DOC) -> None:
    """Replaces (or appends) section `name` of docs/benchmarks.md."""
    section = (
        f"<!-- begin: {name} -->\n## {title}\n\nCommand: `{command}`\n\n{body.strip()}\n<!-- end: {name} -->"
    )
    text = doc.read_text() if doc.exists() else HEADER
    pattern = re.compile(rf"<!-- begin: {re.escape(name)} -->.*?<!-- end: {re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def command_line() -> str:
    """How the running benchmark was invoked, as `python -m benchmarks.NAME ARGS`."""
    module = "benchmarks." + Path(sys.argv[0]).stem
    return " ".join(["python -m", module] + sys.argv[1:])
