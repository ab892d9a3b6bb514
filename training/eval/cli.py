"""`relaydesk eval`: measure every model on its held-out data and write the model card.

Imports nothing heavy at module level, so `relaydesk --help` stays fast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

SECTION_NAMES = "intent, sentiment, urgency, category, churn, retrieval, language"


def eval_command(
    out: Annotated[Path, typer.Option(help="Where to write the model card (markdown).")] = Path(
        "docs/models.md"
    ),
    json_out: Annotated[
        bool, typer.Option("--json", help="Also print every figure as JSON on stdout.")
    ] = False,
    sections: Annotated[
        list[str] | None,
        typer.Option(
            "--sections",
            "-s",
            help=f"Only these sections (repeat or comma-separate): {SECTION_NAMES}.",
        ),
    ] = None,
    fast: Annotated[
        bool,
        typer.Option(help="Quick sanity run on fixed slices (figures not comparable)."),
    ] = False,
    models_dir: Annotated[
        Path | None,
        typer.Option(help="Models folder (encoder, caches); default $RELAYDESK_DATA_DIR/models."),
    ] = None,
    datasets_dir: Annotated[
        Path | None,
        typer.Option(help="Data-set cache; default $RELAYDESK_DATA_DIR/datasets."),
    ] = None,
    encoder: Annotated[str, typer.Option(help="Encoder: e5-onnx, e5-torch or minilm.")] = "e5-onnx",
    threads: Annotated[int, typer.Option(min=1, help="Encoder threads.")] = 1,
    strict: Annotated[
        bool, typer.Option(help="Exit with status 1 when any target is missed.")
    ] = False,
) -> None:
    """Measure every model on its held-out data in one run and write the model card."""
    from tqdm import tqdm

    from training.datasets import DatasetError
    from training.eval import EvalConfig, all_checks, render_card, resolve_sections, run_eval

    requested = [n.strip() for item in sections or [] for n in item.split(",") if n.strip()]
    try:
        names = resolve_sections(requested)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--sections") from exc
    if models_dir is None:
        from core.settings import get_settings

        models_dir = get_settings().models_dir
    config = EvalConfig(
        models_dir=models_dir,
        datasets_dir=datasets_dir,
        encoder=encoder,
        threads=threads,
        fast=fast,
    )
    with tqdm(total=len(names), unit="section", desc="eval", disable=json_out) as bar:
        started: list[str] = []

        def step(name: str) -> None:
            if started:  # the previous section is done
                bar.update()
            started.append(name)
            bar.set_postfix_str(name)

        try:
            figures, run = run_eval(config, names, on_section=step)
        except DatasetError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(1) from exc
        bar.update()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_card(figures, run), encoding="utf-8")
    checks = all_checks(figures)
    if json_out:
        typer.echo(json.dumps({"run": run, "figures": figures}, indent=2, default=str))
    else:
        for c in checks:
            typer.echo(f"{'met   ' if c.met else 'MISSED'} {c.name}: {c.value:.3f}")
        typer.echo(f"model card: {out} ({run['seconds']:.0f} s)")
    if strict and any(not c.met for c in checks):
        raise typer.Exit(1)
