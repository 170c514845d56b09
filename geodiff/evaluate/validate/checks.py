"""One validation check: what was measured, against which criterion, and the verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from geodiff.tables import markdown_table

__all__ = ["Check", "checks_table"]


@dataclass(frozen=True)
class Check:
    """The outcome of one check of a trained model.

    Attributes
    ----------
    group : str
        ``"prior"`` or ``"posterior"``.
    name : str
        What is checked, e.g. ``"classifier two-sample test (ROC AUC)"``.
    value : str
        The measured figure, formatted.
    floor : str
        What the same measurement gives without error (e.g. between two sets of exact
        simulations, or the exact reference), formatted; ``"—"`` when not applicable.
    criterion : str
        The rule for passing, stated before looking at the result.
    passed : bool
    """

    group: str
    name: str
    value: str
    floor: str
    criterion: str
    passed: bool

    @property
    def status(self) -> str:
        """``"pass"`` or ``"warn"``."""
        return "pass" if self.passed else "warn"

    def to_dict(self) -> dict:
        return {**asdict(self), "status": self.status}


def checks_table(checks) -> str:
    """A Markdown table of checks, one row each."""
    header = ["check", "measured", "floor / reference", "criterion", "status"]
    rows = []
    for c in checks:
        cells = [f"{c.group}: {c.name}", c.value, c.floor, c.criterion]
        cells = [cell.replace("|", "\\|") for cell in cells]  # pipes inside cells
        rows.append([*cells, "**pass**" if c.passed else "**WARN**"])
    return markdown_table(header, rows)
