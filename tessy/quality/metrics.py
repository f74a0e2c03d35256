"""QA metrics as long frames (subject_id, metric, value): per trace (subject = trace_id) and per
method of a run (subject = "{run_id}/{method}")."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import duckdb
import polars as pl

from tessy.progress import Steps
from tessy.quality.code_exec import extract_code, run_tests
from tessy.quality.traces import (
    Tests,
    answer_present,
    has_tests,
    ok_traces,
    parse_tests,
    require_columns,
    thinking_of,
)

LONG_SCHEMA = {"subject_id": pl.String, "metric": pl.String, "value": pl.Float64}
QUANTILES = (0.1, 0.5, 0.9)
TRACE_COLUMNS = (
    "trace_id",
    "question_id",
    "text",
    "answer",
    "status",
    "test_cases",
    "n_tokens",
    "n_tokens_teacher",
    "n_tokens_student",
)


def repetition_rate(text: str, n: int = 4) -> float:
    """Share of word n-grams that repeat an earlier one: 0 for all-distinct text, near 1 for a loop."""
    words = text.split()
    grams = list(zip(*(words[i:] for i in range(n)), strict=False))
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def _pass_rate(
    answer: str | None, tests: Tests, timeout_s: float, memory_mb: int, allow_unsafe: bool
) -> float | None:
    """The share of tests passed; None when the code could not be run safely."""
    result = run_tests(
        extract_code(answer or ""),
        tests.inputs,
        tests.outputs,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        stop_on_fail=False,
        allow_unsafe=allow_unsafe,
    )
    return None if result.status == "not_run" else result.n_passed / result.n_tests


def pass_rates(
    frame: pl.DataFrame,
    *,
    workers: int = 2,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
    steps: Steps | None = None,
    allow_unsafe: bool = False,
) -> pl.DataFrame:
    """(trace_id, pass_rate) for ok traces whose question has tests: the share of tests the answer's
    last code block passes in the sandbox; runs `workers` traces at a time."""
    require_columns(frame, ["trace_id", "question_id", "answer", "test_cases"], "pass rates")
    jobs = [
        (tid, answer, tests)
        for tid, qid, answer, cases in ok_traces(frame)
        .select("trace_id", "question_id", "answer", "test_cases")
        .iter_rows()
        if (tests := parse_tests(qid, cases)) is not None
    ]
    steps = steps or Steps("pass rates")
    steps.begin("code tests, answers", len(jobs))

    def rate(job: tuple[str, str | None, Tests]) -> float | None:
        value = _pass_rate(job[1], job[2], timeout_s, memory_mb, allow_unsafe)
        steps.advance()
        return value

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rates = list(pool.map(rate, jobs))
    return pl.DataFrame(
        {"trace_id": [j[0] for j in jobs], "pass_rate": rates},
        schema={"trace_id": pl.String, "pass_rate": pl.Float64},
    )


def trace_metrics(
    frame: pl.DataFrame,
    *,
    run_code: bool = True,
    workers: int = 2,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
    ngram: int = 4,
    steps: Steps | None = None,
    allow_unsafe: bool = False,
) -> pl.DataFrame:
    """Per-trace metrics of the ok traces: token counts, student share, repetition rate of the thinking,
    answer present, and (when `run_code`) the pass rate and solved flag of questions with tests."""
    require_columns(frame, TRACE_COLUMNS, "trace metrics")
    ok = ok_traces(frame)
    tested = has_tests(ok)
    wide = ok.select(
        pl.col("trace_id").alias("subject_id"),
        *(pl.col(c).cast(pl.Float64) for c in ("n_tokens", "n_tokens_teacher", "n_tokens_student")),
        student_share=pl.when(pl.col("n_tokens") > 0)
        .then(pl.col("n_tokens_student") / pl.col("n_tokens"))
        .otherwise(0.0),
        repetition_rate=pl.col("text").map_elements(
            lambda t: repetition_rate(thinking_of(t), ngram), return_dtype=pl.Float64
        ),
        answer_present=pl.Series(
            [float(answer_present(a, code)) for a, code in zip(ok["answer"], tested, strict=True)],
            dtype=pl.Float64,
        ),
    )
    if run_code:
        rates = pass_rates(
            ok,
            workers=workers,
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            steps=steps,
            allow_unsafe=allow_unsafe,
        )
        wide = wide.join(
            rates.select(
                pl.col("trace_id").alias("subject_id"),
                "pass_rate",
                solved=(pl.col("pass_rate") == 1.0).cast(pl.Float64),
            ),
            on="subject_id",
            how="left",
        )
    # Questions without tests have no pass rate: their rows are left out, not zero.
    return (
        wide.unpivot(index="subject_id", variable_name="metric", value_name="value")
        .drop_nulls("value")
        .cast(LONG_SCHEMA)
    )


METHOD_SQL = """
WITH counts AS (
    SELECT method,
           count(*)::DOUBLE AS n_samples,
           count(*) FILTER (WHERE status = 'ok')::DOUBLE AS n_ok,
           count(*) FILTER (WHERE status <> 'ok')::DOUBLE AS n_failed,
           avg((status <> 'ok')::DOUBLE) AS failure_rate,
           avg(attempts::DOUBLE) AS attempts_mean,
           {quantiles},
           -- Traces made before the token accounting existed (null) are left out of both sums.
           sum(n_generated_tokens)::DOUBLE / nullif(sum(CASE WHEN status = 'ok'
               THEN n_generated_tokens - n_failed_tokens - n_wasted_tokens ELSE 0 END)
               FILTER (WHERE n_generated_tokens IS NOT NULL), 0)::DOUBLE AS generated_per_kept
    FROM {traces} GROUP BY method
), means AS (
    SELECT method, metric || '_mean' AS metric, (total / nullif(n, 0))::DOUBLE AS value FROM {sums}
)
SELECT $prefix || method AS subject_id, metric, value
FROM (UNPIVOT counts ON COLUMNS(* EXCLUDE (method)) INTO NAME metric VALUE value)
UNION ALL
SELECT $prefix || method, metric, value FROM means
ORDER BY subject_id, metric
"""


def per_trace_sums(per_trace: str, traces: str) -> str:
    """The `sums` relation of `method_metrics` (method, metric, n, total) summed up from per-trace
    metrics `per_trace` (subject_id=trace_id, metric, value) of the traces `traces` (trace_id,
    method): relation names or parenthesized subqueries."""
    return f"""(
        SELECT t.method, p.metric, count(p.value) AS n, coalesce(sum(p.value), 0) AS total
        FROM {per_trace} p JOIN {traces} t ON p.subject_id = t.trace_id
        GROUP BY ALL
    )"""


def method_metrics(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    *,
    traces: str,
    sums: str,
    params: dict[str, Any] | None = None,
) -> pl.DataFrame:
    """Per-method aggregates, subject "{run_id}/{method}", computed in DuckDB from two relations in
    `con`, each a name (table, view, registered frame) or a parenthesized subquery whose named
    parameters are in `params`, so a warehouse's whole history is summed up without coming into
    memory. `traces`: trace_id, method, status, attempts, n_tokens, n_generated_tokens,
    n_failed_tokens, n_wasted_tokens; `sums`: per method and per-trace metric, the count and sum of
    its values (method, metric, n, total; see `per_trace_sums`).
    Metrics: `{metric}_mean` of every per-trace metric, n_samples / n_ok / n_failed / failure_rate /
    attempts_mean over all traces, n_tokens quantiles of the ok traces, and `generated_per_kept`:
    every token the models generated (failed attempts and traces included) per token kept in a
    finished trace, where the token accounting is known."""
    quantiles = ",\n".join(
        f"quantile_cont(n_tokens::DOUBLE, {q}) FILTER (WHERE status = 'ok') AS n_tokens_p{round(q * 100)}"
        for q in QUANTILES
    )
    sql = METHOD_SQL.format(quantiles=quantiles, traces=traces, sums=sums)
    return con.sql(sql, params={**(params or {}), "prefix": f"{run_id}/"}).pl().cast(LONG_SCHEMA)
