"""`tessy ...`: the command line. Warehouse commands import the warehouse lazily so library-only
commands start fast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="TESSY data platform: student-consistent SFT data synthesis.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

DbOption = Annotated[
    Path | None,
    typer.Option("--db", envvar="TESSY_DB", help="warehouse file [default: .tessy/warehouse.duckdb]"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def _print_rows(rows: list[dict[str, Any]], as_json: bool, title: str | None = None) -> None:
    if as_json:
        print(json.dumps(rows, default=str))
        return
    table = Table(title=title)
    for name in rows[0].keys() if rows else []:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    console.print(table)


@app.command()
def ingest(
    paths: Annotated[list[str], typer.Argument(help="files, directories, .gz, or hf://org/name[/config]")],
    fmt: Annotated[str | None, typer.Option("--format", help="source schema; detected when omitted")] = None,
    question_field: Annotated[str | None, typer.Option(help="question field for generic files")] = None,
    max_chars: Annotated[int, typer.Option(help="quarantine longer questions")] = 100_000,
    batch_rows: Annotated[int, typer.Option(help="rows per batch")] = 50_000,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Read questions into the warehouse; bad rows go to `quarantine` with the reason."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from warehouse.db import open_warehouse
    from warehouse.ingest import IngestStats, ingest_path

    options = {
        "format": fmt,
        "question_field": question_field,
        "max_chars": max_chars,
        "batch_rows": batch_rows,
    }
    total = IngestStats()
    with open_warehouse(db) as wh:
        run_id = wh.start_run("ingest", {"sources": paths, **options})
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed:,} rows"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err, disable=as_json) as progress:
            try:
                for path in paths:
                    task = progress.add_task(path, total=None)
                    stats = ingest_path(
                        wh,
                        path,
                        run_id,
                        fmt=fmt,
                        question_field=question_field,
                        max_chars=max_chars,
                        batch_rows=batch_rows,
                        on_batch=lambda s, t=task: progress.advance(t, s.read),
                    )
                    total.add(stats)
            except BaseException as exc:
                wh.finish_run(run_id, "failed", {**total.as_dict(), "error": repr(exc)})
                raise
        wh.finish_run(run_id, "completed", total.as_dict())
    result = {"run_id": run_id, **total.as_dict()}
    _print_rows([result], as_json, title="ingest")


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="a SQL query; the warehouse is opened read-only")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Query the warehouse (read-only)."""
    import duckdb

    from warehouse.db import open_warehouse

    try:
        with open_warehouse(db, read_only=True) as wh:
            rows = wh.frame(query).to_dicts()
    except (duckdb.Error, FileNotFoundError) as exc:
        err.print(f"[red]error:[/red] {exc}")
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
        rows = wh.frame(
            "SELECT run_id, kind, status, started_at, finished_at, stats_json FROM runs"
            " ORDER BY started_at DESC LIMIT ?",
            [limit],
        ).to_dicts()
    _print_rows(rows, as_json, title="runs")


if __name__ == "__main__":
    app()
