"""What synthesis produces: one trace per (question, method, config), made of authored spans."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Author = Literal["student", "teacher"]
Status = Literal["ok", "failed"]


@dataclass(frozen=True)
class Span:
    author: Author
    text: str
    n_tokens: int  # student tokenizer, as in the paper


@dataclass
class AuthorCost:
    """Each author's own tokens (its own tokenizer): generated, and rolled back after a cut."""

    generated: int = 0
    wasted: int = 0
    requests: int = 0


@dataclass
class Trace:
    trace_id: str
    question_id: str
    method: str
    student_model: str
    teacher_model: str
    predictor_ids: str
    text: str  # the whole response in the student's format: thinking, then the answer
    answer: str
    spans: list[Span]
    n_tokens: int
    n_tokens_teacher: int
    n_tokens_student: int
    n_switches: int
    n_wasted_tokens: int
    status: Status
    error: str | None
    attempts: int
    cost: dict[str, AuthorCost] = field(default_factory=dict)

    @property
    def student_share(self) -> float:
        return self.n_tokens_student / self.n_tokens if self.n_tokens else 0.0

    def row(self) -> dict:
        """A flat record for the Parquet shard (spans and costs nested)."""
        row = asdict(self)
        row["spans"] = [asdict(s) for s in self.spans]
        row["cost"] = [{"author": a, **asdict(c)} for a, c in sorted(self.cost.items())]
        return row
