"""`relaydesk eval`: every model's held-out figures in one run, written as `docs/models.md`.

    from training.eval import EvalConfig, run_eval, render_card
    figures, run = run_eval(EvalConfig(models_dir=Path(".relaydesk/models")), ["intent"])
    Path("docs/models.md").write_text(render_card(figures, run))

Sections (card order) are registered in `training.eval.registry.SECTIONS`; each is a small
measure/render pair in `heads.py`, `category.py` or `tabular_and_language.py`."""

from __future__ import annotations

from training.eval.card import all_checks, render_card
from training.eval.context import EvalConfig, EvalContext, Slices
from training.eval.registry import SECTIONS, Check, Section
from training.eval.runner import resolve_sections, run_eval

__all__ = [
    "SECTIONS",
    "Check",
    "EvalConfig",
    "EvalContext",
    "Section",
    "Slices",
    "all_checks",
    "render_card",
    "resolve_sections",
    "run_eval",
]
