"""The QA report of a run: a summary table (one dict per method, for table artifacts and the CLI) and
a markdown page with that table, the release gate's failures and links to the plots."""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from tessy.quality.expectations import GateResult

# (column in the summary, per-method metric), what a reader compares first leading
COLUMNS = (
    ("samples", "n_samples"),
    ("failed", "n_failed"),
    ("pass_rate", "pass_rate_mean"),
    ("student_share", "student_share_mean"),
    ("similarity_to_student", "similarity_to_student"),
    ("mean_tokens", "n_tokens_mean"),
    ("median_tokens", "n_tokens_p50"),
    ("student_nll", "student_nll_mean"),
    ("answer_present", "answer_present_mean"),
    ("repetition_rate", "repetition_rate_mean"),
)


def summary_table(per_method: pl.DataFrame, run_id: str) -> list[dict[str, Any]]:
    """One row per method of the run, a None where a metric was not measured."""
    prefix = f"{run_id}/"
    rows = per_method.filter(pl.col("subject_id").str.starts_with(prefix)).with_columns(
        method=pl.col("subject_id").str.strip_prefix(prefix)
    )
    values = {(m, k): v for m, k, v in rows.select("method", "metric", "value").iter_rows()}
    table = []
    for method in sorted(set(rows["method"])):
        row: dict[str, Any] = {"method": method}
        for column, metric in COLUMNS:
            value = values.get((method, metric))
            row[column] = int(value) if value is not None and column in ("samples", "failed") else value
        table.append(row)
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "_no rows_"
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in header) + " |" for r in rows]
    return "\n".join(lines)


def markdown_report(
    summary: Sequence[dict[str, Any]],
    plots: Sequence[Path],
    *,
    run_id: str,
    gate: GateResult | None = None,
    relative_to: str | Path | None = None,
    embed: bool = False,
    notes: Sequence[str] = (),
) -> str:
    """The report as markdown, `notes` (how the run was made) first; plot links are relative to
    `relative_to` (the report's folder) if given, or, with `embed`, the PNGs themselves as data URIs
    (for viewers that cannot reach the files)."""
    parts = [f"# QA report: run `{run_id}`", "", *(f"- {note}" for note in notes), ""]
    parts += ["## Per method", "", markdown_table(summary), ""]
    if gate is not None:
        parts += ["## Release gate", "", f"**{'passed' if gate.success else 'FAILED'}**", ""]
        parts += [f"- `{o.name}`: observed {o.observed}" for o in gate.outcomes if not o.success]
        parts.append("")
    if plots:
        parts += ["## Plots", ""]
        for path in plots:
            parts.append(f"![{Path(path).stem}]({_image_src(Path(path), relative_to, embed)})")
        parts.append("")
    return "\n".join(parts)


def _image_src(path: Path, relative_to: str | Path | None, embed: bool) -> str:
    if embed:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    return os.path.relpath(path, relative_to) if relative_to is not None else str(path)
