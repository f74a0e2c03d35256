"""`tessy ...`: the command line. Each stage command runs the same stage function as its Prefect
flow (`tessy.stages`), and adds only printing. Stages are imported when their command runs, so the
other commands start fast."""

from __future__ import annotations

import json
import os
import sys
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tessy.config import DEFAULT_CONFIG, IngestConfig, PipelineConfig, SourceConfig, load_config
from tessy.errors import TessyError
from tessy.microworld.cli import app as microworld_app

app = typer.Typer(help="TESSY data platform: student-consistent SFT data synthesis.", no_args_is_help=True)
app.add_typer(microworld_app, name="microworld")
predictors_app = typer.Typer(help="Boundary predictors: train and evaluate.", no_args_is_help=True)
app.add_typer(predictors_app, name="predictors")
release_app = typer.Typer(help="Releases: create, diff, publish.", no_args_is_help=True)
app.add_typer(release_app, name="release")
console = Console()
err = Console(stderr=True)

DbOption = Annotated[
    Path | None,
    typer.Option("--db", envvar="TESSY_DB", help="warehouse file [default: .tessy/warehouse.duckdb]"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="pipeline YAML")]


def _config(path: Path, db: Path | None = None, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Load a pipeline config, with `--db` and command-line overrides applied."""
    from tessy.preflight import ensure_ready

    cfg = load_config(path, db, overrides)
    ensure_ready(cfg, config_path=path)  # storage that is not there is not created
    return cfg


def _recorded(cfg: PipelineConfig, kind: str):
    from warehouse.db import recorded_run

    return recorded_run(cfg.warehouse, kind, cfg.public_dict())


def _print_rows(rows: list[dict[str, Any]], as_json: bool, title: str | None = None) -> None:
    if as_json:
        print(json.dumps(rows, default=str))
        return
    table = Table(title=title)
    # Text, not markup: a span of code holds "dp[i][j]", which rich would read as a style tag and drop.
    for name in rows[0].keys() if rows else []:
        table.add_column(Text(name), overflow="fold")
    for row in rows:
        table.add_row(*(Text("" if v is None else str(v)) for v in row.values()))
    console.print(table)


@app.command()
def ingest(
    paths: Annotated[
        list[str], typer.Argument(help="files, directories, .gz, or hf://org/name[/config][@revision]")
    ],
    fmt: Annotated[str | None, typer.Option("--format", help="source schema; detected when omitted")] = None,
    question_field: Annotated[str | None, typer.Option(help="question field for generic files")] = None,
    max_chars: Annotated[int, typer.Option(help="quarantine longer questions")] = IngestConfig().max_chars,
    batch_rows: Annotated[int, typer.Option(help="rows per batch")] = IngestConfig().batch_rows,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Read questions into the warehouse; bad rows go to `quarantine` with the reason."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from tessy.stages.ingest import ingest_source
    from warehouse.db import recorded_run
    from warehouse.questions import IngestStats

    options = IngestConfig(max_chars=max_chars, batch_rows=batch_rows)
    sources = [SourceConfig(path=p, format=fmt, question_field=question_field) for p in paths]
    total = IngestStats()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} rows"))
    config = {"sources": paths, "format": fmt, "question_field": question_field, **options.model_dump()}
    with recorded_run(db, "ingest", config) as run:
        with Progress(*columns, TimeElapsedColumn(), console=err, disable=as_json) as progress:
            for source in sources:
                task = progress.add_task(source.path, total=None)
                stats = ingest_source(
                    db, source, options, run.run_id, on_batch=lambda s, t=task: progress.advance(t, s.read)
                )
                total.add(stats)
                run.stats = total.as_dict()
    _print_rows([{"run_id": run.run_id, **total.as_dict()}], as_json, title="ingest")


@app.command("filter")
def filter_questions(
    config: ConfigOption = DEFAULT_CONFIG,
    judge: Annotated[str | None, typer.Option(help="heuristic | llm [default: the config's]")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Label pending questions as programming-contest or not (`question_labels`)."""
    from tessy.stages import filter as stage

    cfg = _config(config, db, {"filter": {"judge": judge}} if judge else {})
    with _recorded(cfg, "filter") as run:
        run.stats = stage.run(cfg, run.run_id)
    _print_rows([{"run_id": run.run_id, "judge": cfg.filter.judge, **run.stats}], as_json, title="filter")


@app.command()
def synthesize(
    config: ConfigOption = DEFAULT_CONFIG,
    method: Annotated[str | None, typer.Option(help="one method [default: the config's methods]")] = None,
    limit: Annotated[int | None, typer.Option(help="most questions")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Synthesize traces for filtered questions that have none for this config, then load them. The
    parts run on threads here; the Prefect flow (`python -m flows.synthesize`) runs them on Ray."""
    from tessy.stages import synthesize as stage

    cfg = _config(config, db)
    if cfg.runner.kind != "threads":
        err.print(f"runner.kind {cfg.runner.kind} is the Prefect flow's; here the parts run on threads")
    with _recorded(cfg, "synthesize") as run:
        run.stats = stage.run(
            cfg, run.run_id, methods=[method] if method else None, limit=limit, show_progress=not as_json
        )
    _print_rows([{"run_id": run.run_id, **run.stats}], as_json, title="synthesize")


@predictors_app.command("train")
def predictors_train(
    config: ConfigOption = DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option(help="retrain even when up to date")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train each role's boundary predictor unless its models, base and settings are unchanged."""
    from tessy.stages import predictors as stage

    cfg = _config(config, db)
    with _recorded(cfg, "predictors") as run:
        result = stage.run(cfg, run.run_id, force=force, progress=not as_json)
    rows = [
        {"role": role, "predictor_id": i["predictor_id"][:12], "trained": i["trained"], "path": i["path"]}
        for role, i in result.items()
    ]
    _print_rows(rows, as_json, title="predictors")


@predictors_app.command("eval")
def predictors_eval(
    config: ConfigOption = DEFAULT_CONFIG,
    problems: Annotated[int, typer.Option(help="held-out microworld problems per role")] = 40,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score the current predictors against the microworld's ground-truth style spans."""
    from tessy.stages import predictors as stage

    report = stage.evaluate(_config(config, db), problems)
    if not as_json:
        rows = [{"role": r, "windows": w, **m} for r, by in report.items() for w, m in by.items()]
        _print_rows(rows, False, title="predictors vs ground truth")
    print(json.dumps(report))


@app.command()
def qa(config: ConfigOption = DEFAULT_CONFIG, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Score this config's traces (tokens, similarity to the student, NLL, pass rate...) and report."""
    from tessy.stages import qa as stage

    cfg = _config(config, db)
    with _recorded(cfg, "qa") as run:
        outcome = stage.run(cfg, run.run_id)
        run.stats = {"traces": outcome.n_traces, "metrics": outcome.n_metrics, "report": str(outcome.report)}
    if as_json:
        print(
            json.dumps(
                {"run_id": run.run_id, "report": str(outcome.report), "summary": outcome.summary}, default=str
            )
        )
        return
    _print_rows(outcome.summary, False, title=f"QA {run.run_id}")
    console.print(f"report: {outcome.report}")


@app.command()
def evaluate(
    config: ConfigOption = DEFAULT_CONFIG,
    release: Annotated[str | None, typer.Option(help="only the questions this release answers")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fine-tune the student on each method's traces and measure held-out pass@1 against the base."""
    from tessy.stages import evaluate as stage

    cfg = _config(config, db)
    with _recorded(cfg, "evaluate") as run:
        outcome = stage.run(cfg, run.run_id, report=partial(err.print, markup=False), release=release)
        run.stats = outcome.stats
    if not as_json:
        _print_rows(
            outcome.table(), False, title=f"evaluate {run.run_id} ({outcome.n_train} training questions)"
        )
    print(json.dumps(outcome.summary, default=str))


@release_app.command("create")
def release_create(
    name: Annotated[str, typer.Argument(help="release name; releases are immutable")],
    config: ConfigOption = DEFAULT_CONFIG,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Gate the traces that passed QA and record them as an immutable, exported release."""
    from tessy.stages import release as stage

    cfg = _config(config, db)
    with _recorded(cfg, "release") as run:
        out = stage.run(cfg, run.run_id, name)
        run.stats = {"release": name, "rows": out.n_rows, "content_hash": out.content_hash}
    row = {
        "release_id": out.release_id,
        "name": name,
        "rows": out.n_rows,
        "content_hash": out.content_hash,
        "parent": out.parent_release_id,
        "folder": out.url,
    }
    _print_rows([row], as_json, title="release")


@release_app.command("diff")
def release_diff(
    a: Annotated[str, typer.Argument(help="older release")],
    b: Annotated[str, typer.Argument(help="newer release")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Traces added, removed and kept from release A to release B, per method."""
    from warehouse.db import open_warehouse
    from warehouse.releases import diff_releases

    with open_warehouse(db, read_only=True) as wh:
        diff = diff_releases(wh, a, b)
    if as_json:
        print(json.dumps(diff))
        return
    _print_rows(diff["by_method"], False, title=f"{a} -> {b} (same content: {diff['same_content']})")


@release_app.command("publish")
def release_publish(
    name: Annotated[str, typer.Argument(help="release to publish")],
    repo: Annotated[str, typer.Option(help="Hub dataset repo, org/name")],
    dry_run: Annotated[bool, typer.Option(help="build and check the folder only")] = False,
    public: Annotated[bool, typer.Option(help="create the repo public")] = False,
    db: DbOption = None,
) -> None:
    """Upload a release to the Hugging Face Hub (token from HF_TOKEN, never printed or stored)."""
    from tessy.stages import release as stage

    result = stage.publish(db, name, repo, dry_run=dry_run, private=not public)
    what = "checked (dry run)" if dry_run else f"published at revision {result.revision}"
    console.print(f"{name}: {len(result.files)} files {what} for {repo}")


@app.command()
def serve(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Start the vLLM servers a config asks for, print their endpoints, and wait (Ctrl-C stops them)."""
    from tessy.engines.servers import serve_forever
    from tessy.runtime import server_log_dir, server_specs

    cfg = _config(config)
    specs = list(server_specs(cfg).values())
    if not specs:
        err.print("the config starts no servers (no model with engine: vllm)")
        raise typer.Exit(1)
    serve_forever(specs, log_dir=server_log_dir(cfg), echo=partial(console.print, markup=False))


@app.command()
def sql(
    query: Annotated[
        str, typer.Argument(help="one SQL statement; read-only, no file, network or extension access")
    ],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Query the warehouse (read-only)."""
    import duckdb

    from warehouse.db import QueryRefused, read_query

    try:
        rows = read_query(db, query).to_dicts()
    except (duckdb.Error, FileNotFoundError, QueryRefused) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    _print_rows(rows, as_json)


@app.command()
def runs(
    limit: Annotated[int, typer.Option(help="most recent runs to show")] = 20,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List pipeline runs, newest first."""
    from warehouse.db import open_warehouse

    with open_warehouse(db, read_only=True) as wh:
        rows = wh.recent_runs(limit)
    _print_rows(rows, as_json, title="runs")


def main() -> None:
    """The `tessy` command: an error ends with one line and exit 1; `--debug` (or TESSY_DEBUG=1) shows
    the traceback instead."""
    debug = "--debug" in sys.argv or os.environ.get("TESSY_DEBUG") == "1"
    if "--debug" in sys.argv:
        sys.argv.remove("--debug")
    try:
        app()
    except Exception as exc:  # noqa: BLE001 - every error reaches the user as one line
        if debug:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        # A TessyError's message says what to do; anything else is a bug, and its type helps.
        if not isinstance(exc, TessyError):
            first = f"{type(exc).__name__}: {first}  (--debug for details)"
        err.print(f"[red]error:[/red] {escape(first)}", soft_wrap=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
