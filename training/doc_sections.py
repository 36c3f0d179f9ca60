"""Marked sections of a markdown document that a command rewrites in place.

Each section sits between `<!-- begin: NAME -->` and `<!-- end: NAME -->`, so commands run
on different machines (the benchmarks into docs/benchmarks.md, `harmonic ablate report`
into docs/results.md) update their own tables without touching the rest of the file.
"""

from __future__ import annotations

import re
from pathlib import Path


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub-flavoured markdown table; cells are formatted with str()."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(doc: Path, name: str, title: str, command: str, body: str, header: str) -> None:
    """Replaces section `name` of `doc`, or appends it; a missing doc starts with `header`."""
    section = f"<!-- begin: {name} -->\n## {title}\n\nCommand: `{command}`\n\n{body.strip()}\n<!-- end: {name} -->"
    text = doc.read_text() if doc.exists() else header
    pattern = re.compile(rf"<!-- begin: {re.escape(name)} -->.*?<!-- end: {re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
