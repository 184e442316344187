"""Writing a benchmark's result as a pair of files: Markdown for people, JSON for tools."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path


def write_pair(folder: Path, stem: str, rows: Sequence[dict[str, object]], markdown: str) -> Path:
    """<stem>.json (the rows) and <stem>.md (the text) in folder; returns the Markdown path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(list(rows), indent=2) + "\n")
    path = folder / f"{stem}.md"
    path.write_text(markdown.rstrip("\n") + "\n")
    return path


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; cells are written as given (format numbers before)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
