"""Release: an immutable, gated snapshot of the traces that passed QA, and its Hub publication.

Reads: this config's traces of `release.methods` that passed QA (finished, with an answer) with
QA's newest per-trace `solved`, the solved rates of its tessy and teacher-only traces over the
questions both have (whatever `release.methods` holds), the newest release (the parent), the latest
QA summary.
Writes: the release folder `workdir/releases/<name>/` (Parquet shards, dataset card, manifest, which
counts the traces `release.require_solved` dropped, per reason) and the gate's result beside it,
both copied to `<storage>/releases/` when the config names a storage URL (the manifest names that
copy, which publishing reads from any machine), and `releases` + `release_items`; publishing
uploads the manifest's files to a Hub dataset repo, tags the commit with the name, and adds a
`release_publications` row.
Servers: none (publishing reaches the Hub; the token is read from HF_TOKEN by the publisher).
Raises: ReleaseNameError (invalid, taken, or unknown name), ReleaseBlocked (no rows, none left after
`require_solved`, or the gate failed: a Great Expectations expectation, or TESSY's solved rate below
`release.min_solved_ratio` times teacher-only's; at publishing, with `evaluate.gate` on, no evaluation
since the release or a fine-tuned student that does not beat the base), ReleaseTampered (the files
no longer hash to the release's content hash).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from tessy.config import EvaluateGateConfig, PipelineConfig
from tessy.errors import ReleaseBlocked, ReleaseNameError, ReleaseTampered
from tessy.hashing import config_hash, sha256_text
from tessy.quality.expectations import GateConfig, GateResult, SolvedRates, row_checks, validate_release
from tessy.quality.traces import has_tests
from tessy.release.card import CardInfo, write_card
from tessy.release.export import RELEASE_COLUMNS, ReleaseWriter, files_hash
from tessy.release.names import checked_release_name
from tessy.release.publish import PublishResult
from tessy.release.publish import publish as upload
from tessy.storage import apart_from_workdir, kept_at, local_copy, shared_storage, store
from warehouse.db import Warehouse, code_version, open_warehouse
from warehouse.evaluations import latest_evaluation
from warehouse.metrics import latest_summary
from warehouse.releases import (
    candidate_frame,
    insert_release,
    newest_release,
    next_release_name,
    question_tests,
    record_publication,
    release_batches,
    release_exists,
    release_record,
    solved_rates,
    unpublished,
)

TESSY, BASELINE = "tessy", "teacher-only"
BATCH_ROWS = 2_000  # rows read from the warehouse at once: what bounds the text held in memory


@dataclass
class ReleaseOutcome:
    release_id: str
    name: str
    folder: Path  # this machine's copy
    url: str  # where every machine reads it: the copy in the config's storage, or `folder`
    n_rows: int
    content_hash: str
    parent_release_id: str | None
    gate: GateResult
    dropped: dict[str, int]  # by `release.require_solved`, per reason; empty when it is off


def keep_solved(frame: pl.DataFrame, tested: set[str]) -> tuple[pl.DataFrame, dict[str, int]]:
    """Rejection sampling: the traces whose answer passed all its question's tests (`solved` == 1),
    and how many were dropped: `unsolved`, `no_tests` (nothing to check the answer against), and
    `not_run` (tests, but QA never ran them: code off, or no sandbox). `tested`: the questions with
    tests, of those whose traces have no `solved`."""
    reason = (
        pl.when(pl.col("solved") == 1)
        .then(None)
        .when(pl.col("solved").is_not_null())
        .then(pl.lit("unsolved"))
        .when(pl.col("question_id").is_in(sorted(tested)))
        .then(pl.lit("not_run"))
        .otherwise(pl.lit("no_tests"))
    )
    marked = frame.with_columns(_dropped=reason)
    counts = dict.fromkeys(("unsolved", "no_tests", "not_run"), 0) | dict(
        marked.drop_nulls("_dropped")["_dropped"].value_counts().iter_rows()
    )
    return marked.filter(pl.col("_dropped").is_null()).drop("_dropped"), counts


def tested_questions(wh: Warehouse, question_ids: list[str]) -> set[str]:
    """Those of the questions that have tests."""
    return {
        q
        for batch in question_tests(wh, question_ids, BATCH_ROWS)
        for q, tested in zip(batch["question_id"], has_tests(batch), strict=True)
        if tested
    }


def write_rows(wh: Warehouse, frame: pl.DataFrame, writer: ReleaseWriter) -> pl.DataFrame:
    """Stream the candidate traces' rows out of the warehouse into the writer, a batch at a time, and
    return the candidates with the `row_checks` of their rows."""
    ids, checks, done = frame["trace_id"], [], 0
    for batch in release_batches(wh, ids.to_list(), RELEASE_COLUMNS, BATCH_ROWS):
        if not batch["trace_id"].equals(ids.slice(done, batch.height)):
            raise RuntimeError("the release's traces changed in the warehouse while they were read")
        checks.append(row_checks(batch))
        writer.write(batch.select(RELEASE_COLUMNS))
        done += batch.height
    return frame.hstack(pl.concat(checks))


def baseline_rates(rates: pl.DataFrame) -> SolvedRates | None:
    """TESSY's and teacher-only's solved rates from `solved_rates`' rows; None when they share no question."""
    by_method = {m: (n, r) for m, n, r in rates.select("method", "n_questions", "solved_rate").iter_rows()}
    if TESSY not in by_method or BASELINE not in by_method:
        return None
    (n, rate), (_, baseline) = by_method[TESSY], by_method[BASELINE]
    return SolvedRates(TESSY, rate, BASELINE, baseline, n)


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
    `if_changed`, nothing is made (None) when the rows are those of that parent. The rows stream from
    the warehouse into the shards and the content hash; the gate runs on the narrow candidate rows with
    the checks of each row's text made on the way."""
    folder = cfg.workdir / "releases" / checked_release_name(name)
    url = kept_at(cfg, f"releases/{name}")
    methods = "/".join(cfg.release.methods)
    with open_warehouse(cfg.warehouse) as wh:
        if release_exists(wh, name):
            raise ReleaseNameError(f"release {name!r} exists; releases are immutable, pick another name")
        frame = candidate_frame(wh, cfg)
        # Teacher-only traces are the baseline even when the release does not hold them.
        rates = solved_rates(wh, cfg, [TESSY, BASELINE])
        parent, parent_hash = newest_release(wh)
        metrics = latest_summary(wh)
        evaluation = latest_evaluation(wh)
        if frame.height == 0:
            raise ReleaseBlocked(f"no {methods} trace of this config passed QA (finished, with an answer)")
        dropped: dict[str, int] = {}
        if cfg.release.require_solved:
            unmeasured = frame.filter(pl.col("solved").is_null())["question_id"].to_list()
            frame, dropped = keep_solved(frame, tested_questions(wh, unmeasured))
            if frame.height == 0:
                raise ReleaseBlocked(
                    f"no {methods} trace of this config solved its tests (release.require_solved); dropped:"
                    f" {', '.join(f'{n} {reason}' for reason, n in dropped.items())}"
                )
        writer = ReleaseWriter(
            folder,
            frame.height,
            config=cfg.release.config_name,
            max_rows_per_shard=cfg.release.max_rows_per_shard,
        )
        try:
            checked = write_rows(wh, frame, writer)
            if if_changed and writer.content_hash == parent_hash:
                writer.discard()
                return None
            gate = validate_release(
                checked,
                GateConfig(methods=tuple(cfg.release.methods), min_solved_ratio=cfg.release.min_solved_ratio),
                # A release without TESSY traces is not judged by them.
                solved=baseline_rates(rates) if TESSY in cfg.release.methods else None,
            )
            validation = folder.parent / f"{name}.validation.json"
            validation.write_text(json.dumps(gate.raw, indent=1, default=str))
            if apart_from_workdir(cfg):
                shared_storage(cfg).put_file(validation, f"releases/{validation.name}")
            if not gate.success:
                raise ReleaseBlocked(f"release {name!r} failed its expectations: {', '.join(gate.reasons)}")
        except BaseException:
            writer.discard()
            raise
    export = writer.commit()
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
        "dropped": dropped,
        "files": [str(f) for f in export.files],
        "folder": url,
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
            evaluation=evaluation,
            manifest=manifest,
            license=cfg.release.license,
        ),
    )
    store(cfg, f"releases/{name}")
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
    return ReleaseOutcome(
        release_id, name, folder, url, export.n_rows, export.content_hash, parent, gate, dropped
    )


def unpublished_releases(db: Path, repo_id: str) -> list[str]:
    """Releases not yet on `repo_id`, oldest first."""
    with open_warehouse(db, read_only=True) as wh:
        return unpublished(wh, repo_id)


def check_evaluation(wh: Warehouse, name: str, gate: EvaluateGateConfig) -> None:
    """The evaluation gate: an evaluate run made after the release must show the student fine-tuned on
    `gate.method`'s traces beating the base by at least `gate.min_gain` pass@1 (mean over seeds)."""
    created = wh.scalar("SELECT created_at FROM releases WHERE name = ?", [name])
    summary = latest_evaluation(wh, since=created)
    if summary is None:
        raise ReleaseBlocked(
            f"release {name!r} not published: evaluate.gate is on and no evaluate run finished after the"
            " release was made (run `tessy evaluate` first)"
        )
    if gate.method not in summary or "base" not in summary:
        raise ReleaseBlocked(
            f"release {name!r} not published: the newest evaluation has no {gate.method!r} score"
        )
    gain = summary[gate.method] - summary["base"]
    if gain < gate.min_gain:
        raise ReleaseBlocked(
            f"release {name!r} not published: the student fine-tuned on {gate.method} traces scores pass@1 "
            f"{summary[gate.method]:.3f} vs the base's {summary['base']:.3f} (gain {gain:+.3f} < "
            f"evaluate.gate.min_gain {gate.min_gain})"
        )


def publish(
    db: Path | None,
    name: str,
    repo_id: str,
    *,
    dry_run: bool = False,
    private: bool = True,
    client: Any = None,
    gate: EvaluateGateConfig | None = None,
) -> PublishResult:
    """Upload a release's files to a Hub dataset repo, tag the commit with the release name and record
    the publication. The files are re-hashed first: a release whose files no longer give its content
    hash is refused, and so is one `gate` blocks (see check_evaluation). The token is read from
    HF_TOKEN by the publisher and never passes through here."""
    with open_warehouse(db) as wh:
        release_id, expected, manifest = release_record(wh, name)
        if gate is not None and gate.enabled:
            check_evaluation(wh, name, gate)
    url = manifest["folder"]
    with local_copy(url) as folder:
        if (found := files_hash(folder, manifest["files"])) != expected:
            raise ReleaseTampered(
                f"release {name!r}: its files in {url} hash to {found[:12] or 'nothing'},"
                f" not {expected[:12]}; not published"
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
