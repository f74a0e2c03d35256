"""Ingest: one source into the warehouse.

Reads: a local file, directory or .gz, or `hf://org/name[/config][@revision]` (a Hub dataset).
Writes: `questions` (a question is keyed by its normalized text, so one seen again is not stored
twice; a new source of it gains a `question_sources` row) and `quarantine` (each row we could not use,
with the reason, once per source row).
Servers: none.
Raises: ValueError for an unknown format, FileNotFoundError for a missing path, and what the Hub
raises for a dataset it cannot serve (the flow retries Hub reads). A bad row is quarantined, never
raised.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tessy.config import IngestConfig, SourceConfig
from tessy.sources import read_source
from warehouse.db import open_warehouse
from warehouse.questions import IngestStats, load_batch


def ingest_source(
    db: Path,
    source: SourceConfig,
    options: IngestConfig,
    run_id: str,
    on_batch: Callable[[IngestStats], None] | None = None,
) -> IngestStats:
    """Stream `source` into the warehouse at `db`, batch by batch (each batch one transaction, the
    warehouse opened for it alone); `on_batch` sees each batch's counts."""
    total = IngestStats()
    batches = read_source(
        source.path,
        source.format,
        question_field=source.question_field,
        max_chars=options.max_chars,
        batch_rows=options.batch_rows,
    )
    for batch in batches:
        # Held for one batch's transaction, not the whole source: a reader (tessy sql, another stage)
        # waits for one batch's write at most, and reading the next batch holds nothing.
        with open_warehouse(db) as wh:
            stats = load_batch(wh, batch, run_id)
        total.add(stats)
        if on_batch:
            on_batch(stats)
    return total
