"""Synthesize: TESSY and baseline traces for the contest questions that have none for this config.

Reads: the contest questions the filter selected (`questions` x `question_labels`), `traces` (what is
done already: an anti-join on trace ids the warehouse computes), and for TESSY the latest predictor
of each role (`predictors`).
Writes: the plan's parts to `<storage>/plans/<run_id>/`, Parquet shards to `<storage>/shards/` (one
writer per part; a rerun skips what its shards hold), then `traces` and `spans` from them (loaded
shards go to `shards/loaded/`, recorded in `shard_ledger`). `storage` is the config's storage URL, or
the workdir. A failed trace is planned again on up to `synthesis.retry_failed` later nights.
Servers: both models.
Raises: StageNotReady when TESSY runs and a role has no predictor.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

from tessy.boundary.model import torch_threads
from tessy.config import PipelineConfig
from tessy.errors import StageNotReady
from tessy.filtering.judges import filter_identity
from tessy.progress import Report
from tessy.runtime import ROLES, Endpoints, model_endpoints, synthesizer_from_config
from tessy.storage import Folder, read_table, shared_storage
from tessy.synthesis.identity import recipe
from tessy.synthesis.scheduler import Job, RunStats, run_jobs
from tessy.synthesis.shards import ShardWriter
from warehouse.db import open_warehouse
from warehouse.predictors import PredictorRef, latest_predictors
from warehouse.traces import jobs_to_synthesize, load_shards, run_summary


@dataclass
class Plan:
    jobs: list[Job]
    predictors: dict[str, PredictorRef]  # role -> predictor, for TESSY

    def parts(self, n: int) -> list[list[Job]]:
        """The jobs dealt into `n` parts of near-equal size (empty ones left out)."""
        return [part for i in range(n) if (part := self.jobs[i::n])]


def shard_folder(cfg: PipelineConfig) -> Folder:
    return shared_storage(cfg) / "shards"


def plan(cfg: PipelineConfig, methods: list[str], limit: int | None = None) -> Plan:
    """One job per (contest question, method) with no finished trace for this config, question by
    question in id order, methods as listed; at most `limit` questions. The warehouse finds them:
    only the new work comes into memory."""
    with open_warehouse(cfg.warehouse) as wh:
        predictors = _predictors(latest_predictors(wh), methods)
        ids = [ref.predictor_id for ref in predictors.values()]
        todo = jobs_to_synthesize(
            wh,
            *filter_identity(cfg),
            [recipe(cfg, method, ids) for method in methods],
            cfg.synthesis.retry_failed,
            limit,
        )
    jobs = [
        Job(r["trace_id"], r["question_id"], r["question"], r["method"], r["recipe"])
        for r in todo.iter_rows(named=True)
    ]
    return Plan(jobs, predictors)


def _predictors(latest: dict[str, PredictorRef], methods: list[str]) -> dict[str, PredictorRef]:
    """Both roles' latest predictors for TESSY; none for the baselines."""
    if "tessy" not in methods:
        return {}
    if set(latest) != set(ROLES):
        raise StageNotReady("TESSY needs a predictor for both roles: run `tessy predictors train` first")
    return latest


def write_parts(cfg: PipelineConfig, run_id: str, work: Plan) -> list[str]:
    """Deal the plan into `runner.parts` parts and write each to storage; returns their URLs, which
    are all a part needs to find its jobs (on any machine)."""
    folder = shared_storage(cfg) / "plans" / run_id
    return [
        folder.write_table(f"part-{i:04d}.parquet", pa.Table.from_pylist([asdict(j) for j in jobs]))
        for i, jobs in enumerate(work.parts(cfg.runner.parts))
    ]


def read_part(url: str) -> list[Job]:
    return [Job(**row) for row in read_table(url).to_pylist()]


def shared_predictors(cfg: PipelineConfig, predictors: dict[str, PredictorRef]) -> dict[str, PredictorRef]:
    """The predictors where every part reaches them: as they are with local storage, else copied once
    to `<storage>/predictors/<id>/`."""
    folder = shared_storage(cfg)
    if folder.local:
        return predictors
    shared = {}
    for role, ref in predictors.items():
        name = f"predictors/{ref.predictor_id}"
        copy = folder / name if (folder / name).exists("config.json") else folder.put_dir(ref.path, name)
        shared[role] = PredictorRef(ref.predictor_id, copy.url)
    return shared


def _local_predictors(cfg: PipelineConfig, predictors: dict[str, PredictorRef]) -> dict[str, PredictorRef]:
    """The predictors on this machine: one in storage is fetched once into `workdir/cache/`."""
    local = {}
    for role, ref in predictors.items():
        folder = Folder(ref.path)
        cache = cfg.workdir / "cache" / "predictors" / ref.predictor_id
        if not folder.local and not cache.exists():
            cache.parent.mkdir(parents=True, exist_ok=True)
            folder.get_dir(cache)
        local[role] = ref if folder.local else PredictorRef(ref.predictor_id, str(cache))
    return local


def synthesize_part(
    cfg: PipelineConfig,
    endpoints: Endpoints,
    predictors: dict[str, PredictorRef],
    part: str,
    *,
    show_progress: bool = False,
    report: Report | None = None,
) -> RunStats:
    """Run the jobs of plan part `part` (a URL from `write_parts`) against the servers at `endpoints`,
    writing finished traces to shards; `report` gets a progress line every half minute."""
    synthesizer = synthesizer_from_config(cfg, endpoints, _local_predictors(cfg, predictors))
    writer = ShardWriter(shard_folder(cfg), cfg.synthesis.shard_size)
    with torch_threads(cfg.synthesis.predictor_threads):
        return asyncio.run(
            run_jobs(
                synthesizer,
                read_part(part),
                writer,
                concurrency=cfg.synthesis.concurrency,
                show_progress=show_progress,
                report=report,
            )
        )


def load(cfg: PipelineConfig, run_id: str) -> dict[str, int]:
    """Move the shards' traces and spans into the warehouse (idempotent: see `load_shards`), then
    delete the run's plan."""
    with open_warehouse(cfg.warehouse) as wh:
        loaded = load_shards(wh, shard_folder(cfg), run_id)
    (shared_storage(cfg) / "plans" / run_id).remove()
    return loaded


def summary(cfg: PipelineConfig, run_id: str) -> list[dict[str, Any]]:
    """Per method, what run `run_id` made: traces, failures, tokens, the teacher's share."""
    with open_warehouse(cfg.warehouse, read_only=True) as wh:
        return run_summary(wh, run_id)


def run(
    cfg: PipelineConfig,
    run_id: str,
    *,
    methods: list[str] | None = None,
    limit: int | None = None,
    endpoints: Endpoints | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Plan, synthesize in `runner.parts` parts on threads of this process against the same servers
    (started for the block without `endpoints`), and load. The Prefect flow runs the same parts on
    the configured runner (threads or Ray). Returns jobs, done, failed, traces and spans loaded."""
    work = plan(cfg, methods or list(cfg.synthesis.methods), cfg.synthesis.limit if limit is None else limit)
    parts = write_parts(cfg, run_id, work)
    predictors = shared_predictors(cfg, work.predictors)
    with model_endpoints(cfg, ROLES, endpoints) as running, ThreadPoolExecutor(max(1, len(parts))) as pool:
        results = list(
            pool.map(
                lambda part: synthesize_part(
                    cfg, running, predictors, part, show_progress=show_progress and len(parts) == 1
                ),
                parts,
            )
        )
    return {
        "jobs": len(work.jobs),
        "done": sum(r.done for r in results),
        "failed": sum(r.failed for r in results),
        **load(cfg, run_id),
    }
