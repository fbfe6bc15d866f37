"""Markdown tables and generated sections of BENCHMARKS.md, shared by every benchmark writer.

A section sits between ``<!-- bench:<name>:start -->`` and ``<!-- bench:<name>:end -->`` markers,
so a benchmark rewrites its own table and keeps the hand-written text around it.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path


def markdown_table(rows: list[dict[str, str]]) -> str:
    """Columns in order of first appearance; a row without a column gets an empty cell."""
    columns = list(dict.fromkeys(column for row in rows for column in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def machine_description(with_cpu_model: bool = True) -> str:
    """Cores, CPU model, memory and the software versions the numbers were measured with; a
    table whose rows were measured on several machines names each row's CPU model itself."""
    import tensorflow as tf

    cores = f"{os.cpu_count()} CPU cores" + (f" ({cpu_model()})" if with_cpu_model else "")
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cores}, {memory_gib:.0f} GiB RAM, no GPU; "
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}"
    )


def cpu_model() -> str:
    """The CPU's model name: cloud VMs of one size come on different CPUs, whose speeds differ."""
    cpuinfo = Path("/proc/cpuinfo")
    found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text()) if cpuinfo.exists() else None
    return found.group(1).strip() if found else "unknown CPU"


def rows_in_section(path: Path, section: str) -> list[dict[str, str]]:
    """The table rows already in ``section`` of the file at ``path`` ([] when there is none)."""
    start, end = _markers(section)
    text = path.read_text() if path.exists() else ""
    if start not in text or end not in text:
        return []
    lines = [
        line
        for line in text[text.index(start) : text.index(end)].splitlines()
        if line.startswith("| ")
    ]
    if not lines:
        return []
    columns = _cells(lines[0])
    return [dict(zip(columns, _cells(line), strict=True)) for line in lines[2:]]


def write_section(path: Path, section: str, body: str) -> None:
    """Replace ``section``'s generated part of the file (or append it), keep the rest."""
    start, end = _markers(section)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    generated = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + generated + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + f"\n\n## {section}\n\n{generated}\n"
    write_whole(path, text)
    print(f"wrote {path}", file=sys.stderr)


def write_whole(path: Path, text: str) -> None:
    """Write ``text`` beside ``path`` and rename it there: an interrupted write leaves the old
    file whole."""
    temporary = path.with_name(f"{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _markers(section: str) -> tuple[str, str]:
    return f"<!-- bench:{section}:start -->", f"<!-- bench:{section}:end -->"


def _cells(line: str) -> list[str]:
    """``| a |  | b |`` -> ``["a", "", "b"]``: empty cells kept (a row may lack a column)."""
    return [cell.strip() for cell in line.strip()[1:-1].split("|")]
