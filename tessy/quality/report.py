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
    ("similarity_to_student", "similarity_to_student_mean"),
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


def evaluated(evaluation: dict[str, Any]) -> list[str]:
    """The students an evaluate run's summary scores (its pass@1 means), the base first."""
    return sorted((m for m, v in evaluation.items() if isinstance(v, float)), key=lambda m: (m != "base", m))


def evaluation_rows(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """An evaluate run's summary as rows: the base first, then each method with its gain."""
    ci = evaluation.get("ci95", {})
    base = evaluation.get("base")
    paired = evaluation.get("gain", {})  # runs before the paired interval have none
    return [
        {
            "student": "base" if m == "base" else f"fine-tuned on {m}",
            "pass@1": evaluation[m],
            "ci95": ci.get(m),
            "gain": None if m == "base" or base is None else evaluation[m] - base,
            "gain ci95": paired.get(m, {}).get("ci95"),
        }
        for m in evaluated(evaluation)
    ]


def evaluation_section(evaluation: dict[str, Any] | None) -> list[str]:
    """Markdown lines on what fine-tuning the student on each method's traces did (evaluate stage)."""
    if not evaluation:
        return []
    seeds = evaluation.get("seeds")
    return [
        f"## Fine-tuning the student (evaluate run `{evaluation['run_id']}`, {seeds} seed(s))",
        "",
        "Held-out pass@1 of the student fine-tuned on each method's traces of this config, with the",
        "95% interval (over seeds, or over problems for one seed), and its gain over the base with a",
        "paired 95% interval (over the per-problem differences).",
        "",
        markdown_table(evaluation_rows(evaluation)),
        "",
    ]


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
    evaluation: dict[str, Any] | None = None,
) -> str:
    """The report as markdown, `notes` (how the run was made) first; plot links are relative to
    `relative_to` (the report's folder) if given, or, with `embed`, the PNGs themselves as data URIs
    (for viewers that cannot reach the files). `evaluation`: the newest evaluate run's summary."""
    parts = [f"# QA report: run `{run_id}`", "", *(f"- {note}" for note in notes), ""]
    parts += ["## Per method", "", markdown_table(summary), ""]
    parts += evaluation_section(evaluation)
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
