"""One way to write a Markdown table (reports, BENCHMARKS.md, the command line)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["markdown_table"]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A GitHub-flavoured Markdown table.

    Parameters
    ----------
    header : sequence of str
        Column titles.
    rows : iterable of sequences
        One sequence per row, as many cells as ``header``; cells are written with
        ``str`` (format numbers before passing them).

    Returns
    -------
    str
        The table's lines joined by newlines, without a trailing newline.

    Raises
    ------
    ValueError
        A row with another number of cells than the header (a bug in the caller).
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(c) for c in row]
        if len(cells) != len(header):
            raise ValueError(f"row {cells} has {len(cells)} cells, the header {len(header)}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
