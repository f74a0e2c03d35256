"""Release: an immutable, gated snapshot of the traces that passed QA, and its Hub publication.

Reads: this config's traces of `release.methods` that passed QA (finished, with an answer), the
newest release (the parent), the latest QA summary.
Writes: the release folder `workdir/releases/<name>/` (Parquet shards, dataset card, manifest), the
Great Expectations result beside it, and `releases` + `release_items`; publishing uploads the
manifest's files to a Hub dataset repo, tags the commit with the name, and adds a
`release_publications` row.
Servers: none (publishing reaches the Hub; the token is read from HF_TOKEN by the publisher).
Raises: ReleaseNameError (invalid, taken, or unknown name), ReleaseBlocked (no rows, or the gate
failed), ReleaseTampered (the files no longer hash to the release's content hash).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tessy.config import PipelineConfig
from tessy.errors import ReleaseBlocked, ReleaseNameError, ReleaseTampered
from tessy.hashing import config_hash, sha256_text
from tessy.quality.expectations import GateConfig, GateResult, validate_release
from tessy.release.card import CardInfo, write_card
from tessy.release.export import RELEASE_COLUMNS, content_hash, export_release, files_hash, release_rows
from tessy.release.names import checked_release_name
from tessy.release.publish import PublishResult
from tessy.release.publish import publish as upload
from warehouse.db import code_version, open_warehouse
from warehouse.metrics import latest_summary
from warehouse.releases import (
    candidate_frame,
    insert_release,
    newest_release,
    next_release_name,
    record_publication,
    release_exists,
    release_record,
    unpublished,
)


@dataclass
class ReleaseOutcome:
    release_id: str
    name: str
    folder: Path
    n_rows: int
    content_hash: str
    parent_release_id: str | None
    gate: GateResult


def run(cfg: PipelineConfig, run_id: str, name: str | None = None) -> ReleaseOutcome | None:
    """Release `name`; without a name (the nightly), `{prefix}-{date}-{n}`, made only when its rows
    differ from the newest release's (None otherwise)."""
    if name is not None:
        return create(cfg, name, run_id)
    with open_warehouse(cfg.warehouse) as wh:
        name = next_release_name(wh, cfg.release.name_prefix)
    return create(cfg, name, run_id, if_changed=True)


def create(cfg: PipelineConfig, name: str, run_id: str, *, if_changed: bool = False) -> ReleaseOutcome | None:
    """Gate, export and record release `name`; its parent is the newest release before it. With
    `if_changed`, nothing is made (None) when the rows are those of that parent."""
    folder = cfg.workdir / "releases" / checked_release_name(name)
    with open_warehouse(cfg.warehouse) as wh:
        if release_exists(wh, name):
            raise ReleaseNameError(f"release {name!r} exists; releases are immutable, pick another name")
        frame = candidate_frame(wh, cfg)
        parent, parent_hash = newest_release(wh)
        metrics = latest_summary(wh)
    if frame.height == 0:
        raise ReleaseBlocked(
            f"no {'/'.join(cfg.release.methods)} trace of this config passed QA (finished, with an answer)"
        )
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
    student, teacher = cfg.model("student").name_on_server, cfg.model("teacher").name_on_server
    manifest: dict[str, Any] = {
        "config": cfg.public_dict(),
        "student_model": student,
        "teacher_model": teacher,
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
            student_model=student,
            teacher_model=teacher,
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
        insert_release(
            wh,
            release_id,
            name,
            parent,
            export.n_rows,
            export.content_hash,
            manifest,
            frame["trace_id"].to_list(),
        )
    return ReleaseOutcome(release_id, name, folder, export.n_rows, export.content_hash, parent, gate)


def unpublished_releases(db: Path, repo_id: str) -> list[str]:
    """Releases not yet on `repo_id`, oldest first."""
    with open_warehouse(db, read_only=True) as wh:
        return unpublished(wh, repo_id)


def publish(
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
        release_id, expected, manifest = release_record(wh, name)
    folder = Path(manifest["folder"])
    if (found := files_hash(folder, manifest["files"])) != expected:
        raise ReleaseTampered(
            f"release {name!r}: its files in {folder} hash to {found[:12] or 'nothing'}, not {expected[:12]};"
            " not published"
        )
    result = upload(
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
            record_publication(wh, release_id, repo_id, result.revision, name)
    return result
