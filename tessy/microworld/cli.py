"""`tessy microworld ...`: build the model pair, evaluate a model, export questions."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tessy.microworld.presets import PRESETS

app = typer.Typer(help="The microworld: a synthetic contest domain and a tiny teacher/student model pair.")
console = Console(stderr=True)

# Commands import torch/transformers lazily so that `--help` stays fast.


@app.command()
def build(
    out: Annotated[Path | None, typer.Option(help="Folder for student/ and teacher/")] = None,
    preset: Annotated[str, typer.Option(help=f"One of: {', '.join(PRESETS)}")] = "default",
    seed: int = 0,
) -> None:
    """Build (or reuse) the student and teacher models."""
    from tessy.microworld.build import build as build_models
    from tessy.microworld.build import read_stamp

    if preset not in PRESETS:
        raise typer.BadParameter(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for role, path in build_models(out, preset, seed).items():
        stamp = read_stamp(path) or {}
        train = stamp.get("train", {})
        console.print(
            f"{role}: {path}  {stamp.get('architecture')} {stamp.get('n_params', 0) / 1e6:.2f}M params, "
            f"final loss {train.get('final_loss', math.nan):.3f}, built in {stamp.get('build_seconds')} s"
        )


@app.command("eval")
def eval_model(
    model: Annotated[Path, typer.Option(exists=True, file_okay=False, help="A microworld model folder")],
    n: Annotated[int, typer.Option(min=1, help="Held-out problems to sample")] = 200,
    seed: int = 0,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 for greedy decoding")] = 0.6,
    max_new_tokens: Annotated[int | None, typer.Option(min=1)] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    as_json: Annotated[bool, typer.Option("--json", help="Summary as JSON, last line")] = False,
) -> None:
    """Sample answers to held-out problems; report pass@1, style purity, whether answers carry out the
    thinking's draft (their own, and a given one), and the teacher's judge agreement."""
    from tessy.microworld.evaluate import evaluate

    report = evaluate(
        model, n, seed=seed, temperature=temperature, max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    table = Table(title=f"{report.model} ({report.family})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = {
        "pass@1": report.pass_at_1,
        "style purity": report.style_purity,
        "answer closed": report.closed,
        "answer follows draft": report.answer_follows_draft,
        "follows a given draft": report.follows_given_draft,
    }
    if report.judge_agreement is not None:
        rows["judge agreement"] = report.judge_agreement
    rows.update({f"  {family}": value for family, value in sorted(report.by_family.items())})
    for name, value in rows.items():
        table.add_row(name, f"{value:.3f}")
    table.add_row("n", str(report.n))
    table.add_row("seconds", f"{report.seconds:.0f}")
    console.print(table)
    if as_json:
        print(json.dumps(report.summary()))


@app.command()
def export(
    path: Annotated[Path, typer.Argument(help="JSONL file to write")],
    n_contest: Annotated[int, typer.Option(min=0)] = 200,
    n_other: Annotated[int, typer.Option(min=0)] = 100,
    seed: int = 0,
) -> None:
    """Write held-out questions as OpenThoughts-114k `metadata` JSONL."""
    from tessy.microworld.problems import export_questions

    export_questions(path, n_contest, n_other, seed)
    console.print(f"wrote {n_contest + n_other} questions to {path}")


@app.command()
def benchmark(
    path: Annotated[Path, typer.Argument(help="JSONL file to write")],
    n: Annotated[int, typer.Option(min=1, help="Problems (balanced over the families)")] = 120,
    seed: int = 1,
) -> None:
    """Write held-out contest problems with their hidden tests as a benchmark for `tessy evaluate`."""
    from tessy.microworld.problems import export_benchmark

    export_benchmark(path, n, seed)
    console.print(f"wrote {n} benchmark problems to {path}")
