"""The published dataset schemas we read, and how to recognise them from their columns."""

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace

FieldPath = tuple[str | int, ...]

_NAME = r"[^.\[\]]+"
_PATH = re.compile(rf"{_NAME}(?:\[\d+\]|\.{_NAME})*")
_STEP = re.compile(rf"\[(\d+)\]|\.?({_NAME})")


def parse_field_path(path: str) -> FieldPath:
    """`dialogs[0].content` -> ("dialogs", 0, "content")."""
    if not _PATH.fullmatch(path):
        raise ValueError(f"invalid question_field {path!r}: expected e.g. 'problem' or 'dialogs[0].content'")
    return tuple(int(index) if index else name for index, name in _STEP.findall(path))


@dataclass(frozen=True)
class Field:
    """The question is the value at a (possibly nested) field path such as `dialogs[0].content`."""

    name: str

    @property
    def path(self) -> FieldPath:
        return parse_field_path(self.name)

    @property
    def column(self) -> str:
        return str(self.path[0])

    def missing_reason(self) -> str:
        return f"no question: field '{self.name}' is missing or null"


@dataclass(frozen=True)
class FirstTurn:
    """The question is the text of the first message with a given role in a list of messages."""

    column: str
    role_key: str
    role: str
    text_key: str

    def missing_reason(self) -> str:
        return (
            f"no question: '{self.column}' has no turn with {self.role_key}={self.role!r} "
            f"(or the first one has no '{self.text_key}')"
        )


Question = Field | FirstTurn


@dataclass(frozen=True)
class Format:
    """A dataset schema: where its question is and which columns are worth keeping."""

    name: str
    signature: frozenset[str]  # columns that must all be present for auto-detection
    questions: tuple[Question, ...]  # candidates; the first whose column a file has is used
    id_columns: tuple[str, ...] = ()
    domain_columns: tuple[str, ...] = ()
    difficulty_columns: tuple[str, ...] = ()
    # Short, useful columns only: contest tests and starter code are needed later, reference
    # responses and reasoning traces are not.
    metadata_columns: tuple[str, ...] = ()
    placeholder: tuple[str, str] | None = None  # (question text that stands for "no question", reason)


GENERIC_QUESTION_FIELDS = ("prompt", "question", "problem", "dialogs[0].content")

_SPECS = (
    Format(
        name="openthoughts",
        signature=frozenset({"system", "conversations"}),
        questions=(FirstTurn("conversations", "from", "user", "value"),),
    ),
    Format(
        name="openthoughts-metadata",
        signature=frozenset({"problem", "deepseek_reasoning", "deepseek_solution"}),
        questions=(Field("problem"),),
        domain_columns=("domain",),
        metadata_columns=("source", "test_cases", "starter_code"),
    ),
    Format(
        name="openthoughts3",
        signature=frozenset({"conversations", "difficulty", "domain"}),
        questions=(FirstTurn("conversations", "from", "human", "value"),),
        domain_columns=("domain",),
        difficulty_columns=("difficulty",),
        metadata_columns=("source",),
    ),
    Format(
        name="opencodereasoning",
        signature=frozenset({"id", "input", "output", "solution"}),
        questions=(Field("input"),),
        id_columns=("id",),
        difficulty_columns=("difficulty",),
        metadata_columns=("source", "license", "dataset", "split", "index"),
        placeholder=(
            "-",
            "OpenCodeReasoning placeholder input '-': split_1 rows carry no question text "
            "(it must be joined from the upstream dataset named in 'dataset'/'split')",
        ),
    ),
    Format(
        name="nemotron",
        signature=frozenset({"uuid", "messages"}),
        questions=(FirstTurn("messages", "role", "user", "content"),),
        id_columns=("uuid",),
        domain_columns=("category",),
        metadata_columns=("license", "generator", "version", "reasoning", "metadata"),
    ),
    Format(
        name="generic",
        signature=frozenset(),
        questions=tuple(Field(f) for f in GENERIC_QUESTION_FIELDS),
        id_columns=("id", "uuid"),
        domain_columns=("domain", "category"),
        difficulty_columns=("difficulty",),
        metadata_columns=("source", "license", "test_cases", "starter_code"),
    ),
)

SPECS: dict[str, Format] = {spec.name: spec for spec in _SPECS}
FORMATS: tuple[str, ...] = tuple(SPECS)


def detect_format(columns: Iterable[str]) -> str | None:
    """The most specific format whose signature columns are all present, else None."""
    present = set(columns)
    for spec in _SPECS:
        if spec.signature and spec.signature <= present:
            return spec.name
    generic = SPECS["generic"]
    if any(q.column in present for q in generic.questions):
        return generic.name
    return None


def get_format(name: str, question_field: str | None = None) -> Format:
    """The spec for a format name; `question_field` overrides where a generic question is."""
    if name not in SPECS:
        raise ValueError(f"unknown format {name!r}; expected one of {', '.join(FORMATS)}")
    spec = SPECS[name]
    if question_field is None:
        return spec
    if name != "generic":
        raise ValueError(f"question_field applies to the 'generic' format only, not {name!r}")
    parse_field_path(question_field)  # fail early on a malformed path
    return replace(spec, questions=(Field(question_field),))


@dataclass(frozen=True)
class Plan:
    """What to read from one file: its format with the question candidate and columns chosen."""

    format: str
    question: Question
    id_column: str | None
    domain_column: str | None
    difficulty_column: str | None
    metadata_columns: tuple[str, ...]
    placeholder: tuple[str, str] | None

    @property
    def columns(self) -> tuple[str, ...]:
        named = (self.question.column, self.id_column, self.domain_column, self.difficulty_column)
        return tuple(dict.fromkeys(c for c in (*named, *self.metadata_columns) if c is not None))


def make_plan(spec: Format, columns: Collection[str]) -> Plan:
    """Pick, among a format's candidates, the columns a file actually has (its first one if none)."""

    def first(names: tuple[str, ...]) -> str | None:
        return next((n for n in names if n in columns), names[0] if names else None)

    question = next((q for q in spec.questions if q.column in columns), spec.questions[0])
    return Plan(
        format=spec.name,
        question=question,
        id_column=first(spec.id_columns),
        domain_column=first(spec.domain_columns),
        difficulty_column=first(spec.difficulty_columns),
        metadata_columns=tuple(c for c in spec.metadata_columns if c in columns),
        placeholder=spec.placeholder,
    )
