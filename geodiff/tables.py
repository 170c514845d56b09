"""One way to write a Markdown table (reports, BENCHMARKS.md, the command line)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["markdown_table"]

_RULES = {"-": "---", "l": ":---", "r": "---:", "c": ":---:"}


def markdown_table(header: Sequence[str], rows: Iterable[Sequence], *, align: str = "") -> str:
    """A GitHub-flavoured Markdown table.

    Parameters
    ----------
    header : sequence of str
        Column titles.
    rows : iterable of sequences
        One sequence per row, as many cells as ``header``; cells are written with
        ``str`` (format numbers before passing them).
    align : str, keyword-only
        One letter per column: ``-`` (the renderer's default, ``---``), ``l`` (left),
        ``r`` (right) or ``c`` (centred); empty (default) leaves every column ``---``.

    Returns
    -------
    str
        The table's lines joined by newlines, without a trailing newline.

    Raises
    ------
    ValueError
        A row (or ``align``) with another number of cells than the header, or an
        unknown alignment letter (a bug in the caller).
    """
    header = [str(h) for h in header]
    align = align or "-" * len(header)
    if len(align) != len(header) or set(align) - set(_RULES):
        raise ValueError(f"alignment {align!r} is not one of '-lrc' per column of {header}")
    lines = ["| " + " | ".join(header) + " |", "|" + "".join(_RULES[a] + "|" for a in align)]
    for row in rows:
        cells = [str(c) for c in row]
        if len(cells) != len(header):
            raise ValueError(f"row {cells} has {len(cells)} cells, the header {len(header)}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
