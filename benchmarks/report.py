"""Writes one script's results into its own section of docs/benchmarks.md (through
`training.doc_sections`, which `harmonic ablate report` shares for docs/results.md)."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path

from training import doc_sections

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
RESULTS = DOC.parent / "results.md"
HEADER = "# Benchmarks\n\nEach section is written by the script it names; rerun the command to refresh it.\n"


def machine_line(device: str) -> str:
    return (
        f"Measured {datetime.date.today().isoformat()} on {device} "
        f"(Python {platform.python_version()}, {platform.machine()})."
    )


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages as "1.6/1.9/1.9" ("n/a" where the OS has none):
    what else ran on the machine while a CPU benchmark timed."""
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def write_section(name: str, title: str, command: str, body: str, doc: Path = DOC) -> None:
    """Replaces (or appends) section `name` of docs/benchmarks.md."""
    doc_sections.write_section(doc, name, title, command, body, HEADER)


def command_line() -> str:
    """How the running benchmark was invoked, as `python -m benchmarks.NAME ARGS`."""
    module = "benchmarks." + Path(sys.argv[0]).stem
    return " ".join(["python -m", module] + sys.argv[1:])


def publish_results(name: str, title: str, note: str, header: list, rows: list, write: bool = True) -> None:
    """Prints the table of `header` and `rows`; with `write`, replaces (or appends) section `name`
    of docs/results.md: where it was measured (this 2-core CPU machine), `note` (what the table
    shows), the table."""
    table = doc_sections.markdown_table(header, rows)
    print(table)
    if write:
        body = f"{machine_line('the 2-core CPU VM')} {note}\n\n{table}"
        doc_sections.write_section(RESULTS, name, title, command_line(), body, "")
        print(f"wrote {RESULTS}")
