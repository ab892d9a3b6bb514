"""The model card's sections: a registry of small measure/render pairs, and target checks.

A section measures its figures into a JSON-ready dict (with a `checks` list, each a target
and whether it was met) and renders that dict as markdown. `relaydesk eval` runs the
registered sections in order; `--sections` picks a subset by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from training.eval.context import EvalContext

Figures = dict[str, Any]
Direction = Literal["min", "max"]


@dataclass(frozen=True)
class Check:
    """A figure against its target: `min` means value ≥ target, `max` value ≤ target."""

    name: str
    value: float
    target: float
    direction: Direction = "min"

    @property
    def met(self) -> bool:
        return self.value >= self.target if self.direction == "min" else self.value <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    measure: Callable[[EvalContext], Figures]
    render: Callable[[Figures], str]


SECTIONS: dict[str, Section] = {}


def section(name: str, title: str, render: Callable[[Figures], str]) -> Callable[..., Any]:
    """Register the decorated `measure(ctx) -> figures` under `name` (card order = import
    order of the section modules)."""

    def register(measure: Callable[[EvalContext], Figures]) -> Callable[[EvalContext], Figures]:
        if name in SECTIONS:
            raise ValueError(f"section {name!r} registered twice")
        SECTIONS[name] = Section(name, title, measure, render)
        return measure

    return register


def checks_of(figures: Figures) -> list[Check]:
    """The checks a section's figures carry (none for a section not measured)."""
    return [Check(**{k: v for k, v in c.items() if k != "met"}) for c in figures.get("checks", [])]


def mark(check: Check) -> str:
    return "met" if check.met else "**missed**"


def target_text(check: Check) -> str:
    return f"{'≥' if check.direction == 'min' else '≤'} {check.target:g}"


def checks_table(checks: list[Check]) -> list[str]:
    """Markdown rows: figure, target, measured, met or missed."""
    lines = ["| figure | target | measured | |", "|---|---|---|---|"]
    for c in checks:
        lines.append(f"| {c.name} | {target_text(c)} | {c.value:.3f} | {mark(c)} |")
    return lines
