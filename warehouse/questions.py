"""The questions and the quarantine: question batches stored through DuckDB's Arrow path, each
row we could not use stored once with its reason."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import pyarrow as pa

from tessy.sources.records import Quarantined, SourceBatch
from warehouse.db import Warehouse, registered, transaction


@dataclass
class IngestStats:
    read: int = 0
    ingested: int = 0
    duplicates: int = 0
    quarantined: int = 0

    def add(self, other: IngestStats) -> None:
        self.read += other.read
        self.ingested += other.ingested
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def load_batch(wh: Warehouse, batch: SourceBatch, run_id: str) -> IngestStats:
    """Insert one batch in a single transaction; a question already stored only gains a source row."""
    con = wh.con
    with registered(con, "_batch", batch.questions), transaction(con):
        # The primary key skips questions already stored (or repeated within the batch): the index
        # probe is far cheaper than an anti-join against the whole table.
        inserted = con.execute(
            "INSERT OR IGNORE INTO questions SELECT question_id, text, source, source_id, domain, difficulty,"
            " metadata_json, ? FROM _batch",
            [run_id],
        ).fetchall()[0][0]
        # A question seen in a row other than the one it was first stored from keeps that provenance.
        con.execute(
            """
            INSERT OR IGNORE INTO question_sources
            SELECT DISTINCT b.question_id, b.source, coalesce(b.source_id, ''), ?
            FROM _batch b JOIN questions q USING (question_id)
            WHERE q.source IS DISTINCT FROM b.source OR q.source_id IS DISTINCT FROM b.source_id
            """,
            [run_id],
        )
        add_quarantine(wh, batch.quarantined, run_id)
    return IngestStats(
        read=batch.n_read,
        ingested=inserted,
        duplicates=batch.questions.num_rows - inserted,
        quarantined=len(batch.quarantined),
    )


def add_quarantine(wh: Warehouse, rows: Iterable[Quarantined], run_id: str) -> None:
    rows = list(rows)
    if not rows:
        return
    table = pa.table(
        {
            "run_id": [run_id] * len(rows),
            "source": [r.source for r in rows],
            "locator": [r.locator for r in rows],
            "reason": [r.reason for r in rows],
            "raw": [r.raw for r in rows],
        }
    )
    with registered(wh.con, "_quarantine", table):
        # A row is quarantined once: a retried read, or a later night re-reading the source, finds it.
        wh.con.execute(
            "INSERT INTO quarantine SELECT run_id, source, locator, reason, raw FROM _quarantine q WHERE NOT"
            " EXISTS (SELECT 1 FROM quarantine x WHERE x.source = q.source AND x.locator = q.locator)"
        )
