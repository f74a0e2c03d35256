"""The release gate: a Great Expectations suite run on a release candidate (one row per trace), and
plain checks of figures that are not columns of it.

The candidate is narrow: ids, status and counts. What the gate checks of the wide columns (text,
answer, tests) is reduced to one boolean per row and check by `row_checks`, batch by batch as the
release's rows stream out, so a release of any size is checked without holding its text. Row-wise
rules that GX has no expectation for (token sums, student share) are computed as derived columns and
checked like any other column. The solved rate of TESSY
against the run's own teacher-only baseline compares two aggregates read from elsewhere, so it is a
plain check whose outcome joins the GX ones."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from tessy.quality.traces import METHODS, answer_present, has_tests, require_columns

COUNTS = ("n_tokens", "n_tokens_teacher", "n_tokens_student", "n_switches", "n_wasted_tokens")
ROW_CHECKS = ("text_present", "text_format", "answer_present")
REQUIRED = ("trace_id", "question_id", "method", "status", "attempts", *COUNTS, *ROW_CHECKS)
# A response as synthesis writes it: the thinking in <think> tags, then a non-blank answer.
TEXT_FORMAT = r"^<think>\n[\s\S]*\n</think>\n\n[\s\S]*\S"
SOLVED_CHECK = "solved_vs_teacher_only"
# Rates are shares of small counts: 4/6 is at the bar 0.8 x 5/6, though floats put it just below.
RATE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class GateConfig:
    methods: tuple[str, ...] = METHODS
    min_rows: int = 1
    max_tokens: int | None = None
    # Spans are counted one by one, so their sum may exceed the count of the whole text by a few
    # tokens at each boundary.
    token_slack: int = 8
    token_slack_per_switch: int = 2
    min_solved_ratio: float = 0.9  # TESSY's solved rate at least this times teacher-only's


@dataclass(frozen=True)
class SolvedRates:
    """Solved rates of a method and of its baseline over the questions both have a measured answer for."""

    method: str
    rate: float
    baseline: str
    baseline_rate: float
    n_questions: int


@dataclass(frozen=True)
class Outcome:
    name: str
    success: bool
    observed: Any  # JSON-able: the observed value, or the unexpected count and a sample of values
    detail: str = ""  # for a plain check: its figures in words
    skipped: bool = False  # a plain check that had nothing to compare


@dataclass(frozen=True)
class GateResult:
    success: bool
    outcomes: list[Outcome]
    raw: dict = field(repr=False)  # the full GX validation result, and the plain checks under "checks"

    @property
    def failed(self) -> list[str]:
        return [o.name for o in self.outcomes if not o.success]

    @property
    def reasons(self) -> list[str]:
        """What failed, a plain check with its figures: `name (figures)`."""
        return [f"{o.name} ({o.detail})" if o.detail else o.name for o in self.outcomes if not o.success]

    @property
    def skipped(self) -> list[str]:
        return [o.name for o in self.outcomes if o.skipped]


def row_checks(rows: pl.DataFrame) -> pl.DataFrame:
    """The ROW_CHECKS of each row (with text, answer, question_id and test_cases), in its order: text
    present, text in the response format, and an answer present (a fenced code block where the
    question has tests). Only booleans: a column taken from the rows could hold on to their text."""
    require_columns(rows, ("question_id", "text", "answer", "test_cases"), "the row checks")
    is_code = has_tests(rows)
    return rows.select(
        text_present=pl.col("text").is_not_null(),
        text_format=pl.col("text").str.contains(TEXT_FORMAT).fill_null(False),
        answer_present=pl.Series(
            [answer_present(a, c) for a, c in zip(rows["answer"], is_code, strict=True)], dtype=pl.Boolean
        ),
    )


def _derived(frame: pl.DataFrame, cfg: GateConfig) -> pl.DataFrame:
    return frame.select(
        *REQUIRED,
        authored_tokens_excess=pl.col("n_tokens_teacher")
        + pl.col("n_tokens_student")
        - pl.col("n_tokens")
        - cfg.token_slack_per_switch * pl.col("n_switches"),
        student_share=pl.col("n_tokens_student") / pl.col("n_tokens"),
    )


def _suite(cfg: GateConfig) -> list[tuple[str, Any]]:
    import great_expectations.expectations as gxe

    return [
        ("row_count", gxe.ExpectTableRowCountToBeBetween(min_value=cfg.min_rows)),
        ("trace_id_not_null", gxe.ExpectColumnValuesToNotBeNull(column="trace_id")),
        ("trace_id_unique", gxe.ExpectColumnValuesToBeUnique(column="trace_id")),
        ("question_id_not_null", gxe.ExpectColumnValuesToNotBeNull(column="question_id")),
        (
            "one_trace_per_question_and_method",
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["question_id", "method"]),
        ),
        ("status_ok", gxe.ExpectColumnValuesToBeInSet(column="status", value_set=["ok"])),
        ("method_allowed", gxe.ExpectColumnValuesToBeInSet(column="method", value_set=list(cfg.methods))),
        *((check, gxe.ExpectColumnValuesToBeInSet(column=check, value_set=[True])) for check in ROW_CHECKS),
        (
            "n_tokens_positive",
            gxe.ExpectColumnValuesToBeBetween(column="n_tokens", min_value=1, max_value=cfg.max_tokens),
        ),
        *(
            (f"{c}_non_negative", gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0))
            for c in COUNTS
            if c != "n_tokens"
        ),
        ("attempts_positive", gxe.ExpectColumnValuesToBeBetween(column="attempts", min_value=1)),
        (
            "authored_tokens_within_total",
            gxe.ExpectColumnValuesToBeBetween(column="authored_tokens_excess", max_value=cfg.token_slack),
        ),
        (
            "student_share_in_unit_interval",
            gxe.ExpectColumnValuesToBeBetween(column="student_share", min_value=0, max_value=1),
        ),
    ]


def _outcome(result: dict) -> Outcome:
    """One expectation's outcome from its JSON result."""
    name, values, info = (
        result["expectation_config"]["meta"]["name"],
        result["result"],
        result["exception_info"],
    )
    # GX keeps one exception record, or one per metric that failed to compute.
    records = [info] if "raised_exception" in info else list(info.values())
    errors = sorted({r["exception_message"] for r in records if r.get("raised_exception")})
    if errors:
        observed: Any = {"exception": "; ".join(errors)}
    elif "observed_value" in values:
        observed = values["observed_value"]
    else:
        observed = {
            "unexpected_count": values.get("unexpected_count"),
            "unexpected_sample": values.get("partial_unexpected_list"),
        }
    return Outcome(name, bool(result["success"]), observed)


def solved_ratio_outcome(rates: SolvedRates | None, min_ratio: float) -> Outcome:
    """TESSY's solved rate is at least `min_ratio` times teacher-only's over their shared questions;
    skipped (a success that says so) when they share none."""
    if rates is None or rates.n_questions == 0:
        reason = "no tessy and teacher-only traces of the same questions with QA's solved measured"
        return Outcome(SOLVED_CHECK, True, {"skipped": reason}, detail=f"skipped: {reason}", skipped=True)
    success = rates.rate + RATE_TOLERANCE >= min_ratio * rates.baseline_rate
    detail = (
        f"{rates.method} solved {rates.rate:.2f} {'>=' if success else '<'} {min_ratio:g} x"
        f" {rates.baseline} {rates.baseline_rate:.2f} over {rates.n_questions} questions"
    )
    return Outcome(SOLVED_CHECK, success, {**asdict(rates), "min_ratio": min_ratio}, detail=detail)


def validate_release(
    frame: pl.DataFrame, cfg: GateConfig | None = None, solved: SolvedRates | None = None
) -> GateResult:
    """Run the release gate on a candidate frame (with its `row_checks`); `success` is False when any
    expectation or plain check fails. `solved`: TESSY's and teacher-only's solved rates, None when
    there are none."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    cfg = cfg or GateConfig()
    require_columns(frame, REQUIRED, "the release gate")
    data = _derived(frame, cfg).to_pandas()

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("release")
        .add_dataframe_asset("candidate")
        .add_batch_definition_whole_dataframe("all rows")
    )
    suite = context.suites.add(gx.ExpectationSuite(name="tessy-release"))
    for name, expectation in _suite(cfg):
        expectation.meta = {"name": name}
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="release-gate", data=batch, suite=suite)
    )
    result = definition.run(batch_parameters={"dataframe": data})

    checks = [solved_ratio_outcome(solved, cfg.min_solved_ratio)]
    raw = result.to_json_dict() | {"checks": [asdict(c) for c in checks]}
    return GateResult(
        success=bool(result.success) and all(c.success for c in checks),
        outcomes=[*(_outcome(r) for r in raw["results"]), *checks],
        raw=raw,
    )
