"""Run the registered sections and collect their figures and timings."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from training.eval.context import EvalConfig, EvalContext
from training.eval.registry import SECTIONS, Figures

# importing the section modules registers them, in card order
from training.eval import heads as _heads  # noqa: F401  isort: skip
from training.eval import category as _category  # noqa: F401  isort: skip
from training.eval import tabular_and_language as _rest  # noqa: F401  isort: skip


def machine() -> str:
    """CPU model and core count, e.g. "Intel Xeon ... (2 cores)"."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} cores), Python {platform.python_version()}"


def resolve_sections(names: Sequence[str] | None) -> list[str]:
    """The requested section names in card order; unknown names raise ValueError."""
    if not names:
        return list(SECTIONS)
    if unknown := [n for n in names if n not in SECTIONS]:
        raise ValueError(f"unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
    return [n for n in SECTIONS if n in set(names)]


def run_eval(
    config: EvalConfig,
    sections: Sequence[str] | None = None,
    *,
    on_section: Callable[[str], None] | None = None,
) -> tuple[dict[str, Figures], dict[str, Any]]:
    """(figures per section, run facts) for `sections` (all by default).

    `on_section(name)` is called before each section starts (progress bars)."""
    names = resolve_sections(sections)
    ctx = EvalContext(config)
    figures: dict[str, Figures] = {}
    timings: dict[str, float] = {}
    started = time.perf_counter()
    for name in names:
        if on_section:
            on_section(name)
        t0 = time.perf_counter()
        figures[name] = SECTIONS[name].measure(ctx)
        timings[name] = round(time.perf_counter() - t0, 1)
    encoder = "not loaded (no section needed it)"
    if "encoder" in ctx.__dict__:
        encoder = f"{ctx.encoder.name} `{ctx.encoder.version}` ({config.encoder})"
    run = {
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 1),
        "section_seconds": timings,
        "encoder": encoder,
        "mode": "fast" if config.fast else "full",
        "sections": names,
    }
    return figures, run
