"""Releases: immutable, content-hashed snapshots of the traces that passed QA, gated by Great
Expectations, exported as a Hub-ready dataset folder, diffed, and published."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from tessy.config import PipelineConfig
from tessy.hashing import config_hash, sha256_text
from tessy.quality.expectations import GateConfig, GateResult, validate_release
from tessy.release.card import CardInfo, write_card
from tessy.release.export import content_hash, export_release, files_hash, release_rows
from tessy.release.names import checked_release_name
from tessy.release.publish import PublishResult, publish
from tessy.runtime import served_name
from warehouse.db import Warehouse, code_version, open_warehouse, registered, transaction
from warehouse.qa import latest_summary, trace_frame

# What a release row holds; run ids and retry counts are bookkeeping, not data, so they stay out of
# the content hash: the same traces give the same hash whichever run made them.
RELEASE_COLUMNS = [
    "trace_id",
    "question_id",
    "method",
    "question",
    "text",
    "answer",
    "student_model",
    "teacher_model",
    "predictor_ids",
    "n_tokens",
    "n_tokens_teacher",
    "n_tokens_student",
    "n_switches",
    "test_cases",
]


class ReleaseBlocked(RuntimeError):
    """The release candidate failed its expectation suite; nothing was released."""


class ReleaseTampered(RuntimeError):
    """A release's files no longer match its recorded content hash."""


@dataclass
class ReleaseOutcome:
    release_id: str
    name: str
    folder: Path
    n_rows: int
    content_hash: str
    parent_release_id: str | None
    gate: GateResult


def candidate_frame(wh: Warehouse, cfg: PipelineConfig) -> pl.DataFrame:
    """This config's traces of the released methods that passed QA: finished, with an answer."""
    frame = trace_frame(wh, cfg, cfg.release.methods).filter(pl.col("status") == "ok")
    passed = wh.frame(
        "SELECT DISTINCT subject_id AS trace_id FROM qa_metrics WHERE metric = 'answer_present' AND value = 1"
    )
    return frame.join(passed, on="trace_id", how="semi")


def create_release(
    cfg: PipelineConfig, name: str, run_id: str, *, if_changed: bool = False
) -> ReleaseOutcome | None:
    """Gate, export and record release `name`; its parent is the newest release before it. With
    `if_changed` (the nightly), nothing is made (None) when the rows are those of that parent."""
    folder = cfg.workdir / "releases" / checked_release_name(name)
    with open_warehouse(cfg.warehouse) as wh:
        if wh.scalar("SELECT count(*) FROM releases WHERE name = ?", [name]):
            raise ValueError(f"release {name!r} exists; releases are immutable, pick another name")
        frame = candidate_frame(wh, cfg)
        newest = wh.con.execute(
            "SELECT release_id, content_hash FROM releases ORDER BY created_at DESC LIMIT 1"
        ).fetchall()
        metrics = latest_summary(wh)
    if frame.height == 0:
        raise ReleaseBlocked(
            f"no {'/'.join(cfg.release.methods)} trace of this config passed QA (finished, with an answer)"
        )
    parent, parent_hash = newest[0] if newest else (None, None)
    if if_changed and content_hash(release_rows(frame.select(RELEASE_COLUMNS))) == parent_hash:
        return None
    gate = validate_release(frame, GateConfig(methods=tuple(cfg.release.methods)))
    folder.mkdir(parents=True, exist_ok=True)
    (folder.parent / f"{name}.validation.json").write_text(json.dumps(gate.raw, indent=1, default=str))
    if not gate.success:
        raise ReleaseBlocked(f"release {name!r} failed its expectations: {', '.join(gate.failed)}")
    export = export_release(
        frame.select(RELEASE_COLUMNS),
        folder,
        config=cfg.release.config_name,
        max_rows_per_shard=cfg.release.max_rows_per_shard,
    )
    release_id = sha256_text(f"{name}\n{export.content_hash}")[:16]
    predictor_ids = sorted(
        {p for ids in frame["predictor_ids"].to_list() for p in (ids or "").split(",") if p}
    )
    manifest: dict[str, Any] = {
        "config": cfg.public_dict(),
        "student_model": served_name(cfg.model("student")),
        "teacher_model": served_name(cfg.model("teacher")),
        "predictor_ids": predictor_ids,
        "methods": sorted(frame["method"].unique().to_list()),
        "code_version": code_version(),
        "config_hash": config_hash(cfg.public_dict()),
        "synthesis": cfg.synthesis.identity(),
        "metrics": metrics,
        "files": [str(f) for f in export.files],
        "folder": str(folder),
        "run_id": run_id,
    }
    write_card(
        folder,
        CardInfo(
            name=name,
            release_id=release_id,
            content_hash=export.content_hash,
            n_rows=export.n_rows,
            student_model=manifest["student_model"],
            teacher_model=manifest["teacher_model"],
            repo_id=cfg.release.hub_repo,
            configs=[cfg.release.config_name],
            predictor_ids=predictor_ids,
            methods=manifest["methods"],
            parent_release_id=parent,
            metrics=metrics,
            manifest=manifest,
            license=cfg.release.license,
        ),
    )
    with open_warehouse(cfg.warehouse) as wh:
        items = frame.select("trace_id").with_columns(release_id=pl.lit(release_id)).to_arrow()
        with registered(wh.con, "_items", items), transaction(wh.con):
            wh.con.execute(
                "INSERT INTO releases VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                [
                    release_id,
                    name,
                    parent,
                    datetime.now(UTC).replace(tzinfo=None),
                    export.n_rows,
                    export.content_hash,
                    json.dumps(manifest, sort_keys=True, default=str),
                ],
            )
            wh.con.execute("INSERT INTO release_items SELECT release_id, trace_id FROM _items")
    return ReleaseOutcome(release_id, name, folder, export.n_rows, export.content_hash, parent, gate)


def next_release_name(wh: Warehouse, prefix: str) -> str:
    """`{prefix}-{YYYYMMDD}-{n}`: the n-th release of the day."""
    day = f"{prefix}-{datetime.now(UTC):%Y%m%d}"
    n = wh.scalar("SELECT count(*) FROM releases WHERE name LIKE ? || '-%'", [day])
    return f"{day}-{n + 1}"


def diff_releases(wh: Warehouse, a: str, b: str) -> dict[str, Any]:
    """What changed from release `a` to release `b`: traces added and removed, per method."""
    ids = {}
    for name in (a, b):
        release_id = wh.scalar("SELECT release_id FROM releases WHERE name = ?", [name])
        if release_id is None:
            raise ValueError(f"no release named {name!r}")
        ids[name] = release_id
    rows = wh.frame(
        """
        WITH items AS (
            SELECT trace_id, bool_or(release_id = ?) AS in_a, bool_or(release_id = ?) AS in_b
            FROM release_items GROUP BY trace_id
        )
        SELECT t.method,
               count(*) FILTER (WHERE in_b AND NOT in_a) AS added,
               count(*) FILTER (WHERE in_a AND NOT in_b) AS removed,
               count(*) FILTER (WHERE in_a AND in_b) AS kept
        FROM items JOIN traces t USING (trace_id) WHERE in_a OR in_b
        GROUP BY t.method ORDER BY t.method
        """,
        [ids[a], ids[b]],
    ).to_dicts()
    hashes = dict(
        wh.con.execute("SELECT name, content_hash FROM releases WHERE name IN (?, ?)", [a, b]).fetchall()
    )
    return {"from": a, "to": b, "same_content": hashes[a] == hashes[b], "by_method": rows}


def publish_release(
    db: Path | None,
    name: str,
    repo_id: str,
    *,
    dry_run: bool = False,
    private: bool = True,
    client: Any = None,
) -> PublishResult:
    """Upload a release's files to a Hub dataset repo, tag the commit with the release name and record
    the publication. The files are re-hashed first: a release whose files no longer give its content
    hash is refused. The token is read from HF_TOKEN by the publisher and never passes through here."""
    with open_warehouse(db) as wh:
        row = wh.con.execute(
            "SELECT release_id, content_hash, manifest_json FROM releases WHERE name = ?", [name]
        ).fetchall()
    if not row:
        raise ValueError(f"no release named {name!r}")
    release_id, expected, manifest_json = row[0]
    manifest = json.loads(manifest_json)
    folder = Path(manifest["folder"])
    if (found := files_hash(folder, manifest["files"])) != expected:
        raise ReleaseTampered(
            f"release {name!r}: its files in {folder} hash to {found[:12] or 'nothing'}, not {expected[:12]};"
            " not published"
        )
    result = publish(
        folder,
        repo_id,
        dry_run=dry_run,
        private=private,
        client=client,
        commit_message=f"Release {name}",
        only=manifest["files"],
        tag=name,
    )
    if not dry_run:
        with open_warehouse(db) as wh:
            wh.con.execute(
                "INSERT OR REPLACE INTO release_publications VALUES (?, ?, ?, ?, ?)",
                [release_id, repo_id, result.revision, name, datetime.now(UTC).replace(tzinfo=None)],
            )
    return result


def unpublished(wh: Warehouse, repo_id: str) -> list[str]:
    """Releases not yet published to `repo_id`, oldest first: a failed upload is retried next night."""
    rows = wh.con.execute(
        "SELECT name FROM releases r WHERE NOT EXISTS (SELECT 1 FROM release_publications p"
        " WHERE p.release_id = r.release_id AND p.hub_repo = ?) ORDER BY created_at",
        [repo_id],
    ).fetchall()
    return [r[0] for r in rows]
