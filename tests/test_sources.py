"""Source readers: one fixture per published schema, format detection, quarantine, identity, streaming."""

import gzip
import hashlib
import json
import sys
import types
import unicodedata
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tessy.sources import (
    FORMATS,
    QUESTION_SCHEMA,
    Quarantined,
    SourceBatch,
    detect_format,
    normalize_text,
    question_id,
    read_source,
)

LONG_TRACE = "Let me think step by step. " * 200


def read_all(path: Path | str, **kwargs) -> tuple[list[dict], list[Quarantined], list[SourceBatch]]:
    """Every question and quarantine record of a source; checks the per-batch invariant."""
    batches = list(read_source(str(path), **kwargs))
    for batch in batches:
        assert batch.questions.schema == QUESTION_SCHEMA
        assert batch.n_read == batch.questions.num_rows + len(batch.quarantined)
    questions = [row for b in batches for row in b.questions.to_pylist()]
    return questions, [q for b in batches for q in b.quarantined], batches


def write_jsonl(path: Path, rows: list, opener=open) -> Path:
    with opener(path, "wt", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# --- one fixture per published schema -------------------------------------------------------------


@pytest.fixture
def openthoughts(tmp_path: Path) -> Path:
    system = "Your role as an assistant involves thoroughly exploring questions ..."
    rows = [
        {
            "system": system,
            "conversations": [
                {"from": "user", "value": "Return your final response within \\boxed{}. What is 2+2?"},
                {"from": "assistant", "value": LONG_TRACE},
            ],
        },
        {
            "system": system,
            "conversations": [
                {"from": "user", "value": "Generate an executable Python function: reverse a list."},
                {"from": "assistant", "value": LONG_TRACE},
                {"from": "user", "value": "a follow-up that is not the question"},
            ],
        },
    ]
    return write_parquet(tmp_path / "openthoughts.parquet", rows)


@pytest.fixture
def openthoughts_metadata(tmp_path: Path) -> Path:
    rows = [
        {
            "problem": "Given n integers, print their sum.",
            "deepseek_reasoning": LONG_TRACE,
            "deepseek_solution": "print(sum(map(int, input().split())))",
            "ground_truth_solution": "n = int(input()) ...",
            "domain": "code",
            "source": "codeforces",
            "test_cases": json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]}),
            "starter_code": "",
        },
        {
            "problem": "Find x if 2x = 6.",
            "deepseek_reasoning": LONG_TRACE,
            "deepseek_solution": "x = 3",
            "ground_truth_solution": "3",
            "domain": "math",
            "source": "olympiads",
            "test_cases": None,
            "starter_code": None,
        },
    ]
    return write_jsonl(tmp_path / "metadata.jsonl", rows)


@pytest.fixture
def openthoughts3(tmp_path: Path) -> Path:
    rows = [
        {
            "difficulty": 6,
            "source": "nvidia/OpenCodeReasoning",
            "domain": "code",
            "conversations": [
                {"from": "human", "value": "You are given a tree with n vertices. Count its leaves."},
                {"from": "gpt", "value": LONG_TRACE},
            ],
        },
        {
            "difficulty": None,
            "source": "ai2-adapt-dev/openmath-2-math",
            "domain": "math",
            "conversations": [
                {"from": "gpt", "value": "a stray assistant turn first"},
                {"from": "human", "value": "Compute 7 * 6."},
                {"from": "gpt", "value": LONG_TRACE},
            ],
        },
    ]
    return write_parquet(tmp_path / "ot3.parquet", rows)


@pytest.fixture
def opencodereasoning(tmp_path: Path) -> Path:
    common = {"output": LONG_TRACE, "license": "cc-by-4.0", "split": "train", "solution": "print(1)"}
    rows = [
        {
            **common,
            "id": "a3f1c2",
            "input": "Read a string and print it reversed.",
            "source": "codeforces",
            "dataset": "code_contests",
            "difficulty": "8",
        },
        {
            **common,
            "id": "b7e9d0",
            "input": "-",
            "source": "taco",
            "dataset": "taco",
            "difficulty": "MEDIUM_HARD",
            "index": "1234",
        },
    ]
    return write_jsonl(tmp_path / "ocr.jsonl.gz", rows, opener=gzip.open)


@pytest.fixture
def nemotron(tmp_path: Path) -> Path:
    common = {"license": "cc-by-4.0", "generator": "DeepSeek-R1-0528", "version": "v1", "metadata": "{}"}
    rows = [
        {
            **common,
            "uuid": "0d1e6c3a-0001",
            "category": "code",
            "reasoning": "on",
            "messages": [
                {"role": "system", "content": "detailed thinking on", "tool_calls": []},
                {
                    "role": "user",
                    "content": "Write a program that prints the n-th Fibonacci number.",
                    "tool_calls": [],
                },
                {"role": "assistant", "content": LONG_TRACE, "tool_calls": []},
            ],
        },
        {
            **common,
            "uuid": "0d1e6c3a-0002",
            "category": "math",
            "reasoning": "off",
            "messages": [
                {"role": "user", "content": "Solve x^2 = 9 for x > 0.", "tool_calls": []},
                {"role": "assistant", "content": "3", "tool_calls": []},
            ],
        },
    ]
    path = tmp_path / "nemotron.json"
    path.write_text(json.dumps(rows))
    return path


@pytest.fixture
def generic(tmp_path: Path) -> Path:
    return write_jsonl(
        tmp_path / "generic.jsonl", [{"prompt": "What is a heap?", "id": 17}, {"prompt": "Sort 3 1 2."}]
    )


def test_formats_listed():
    assert FORMATS == (
        "openthoughts",
        "openthoughts-metadata",
        "openthoughts3",
        "opencodereasoning",
        "nemotron",
        "generic",
    )


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (["system", "conversations"], "openthoughts"),
        (
            [
                "problem",
                "deepseek_reasoning",
                "deepseek_solution",
                "ground_truth_solution",
                "domain",
                "source",
            ],
            "openthoughts-metadata",
        ),
        (["conversations", "domain", "source", "difficulty"], "openthoughts3"),
        (
            ["id", "input", "output", "source", "license", "dataset", "split", "difficulty", "solution"],
            "opencodereasoning",
        ),
        (["uuid", "license", "generator", "version", "category", "reasoning", "messages"], "nemotron"),
        (["prompt", "answer"], "generic"),
        (["question"], "generic"),
        (["problem", "answer"], "generic"),
        (["dialogs"], "generic"),
        (["text", "label"], None),
        ([], None),
    ],
)
def test_detect_format(columns: list[str], expected: str | None):
    assert detect_format(columns) == expected


def test_openthoughts_default(openthoughts: Path):
    questions, quarantined, _ = read_all(openthoughts)
    assert not quarantined
    assert [q["text"] for q in questions] == [
        "Return your final response within \\boxed{}. What is 2+2?",
        "Generate an executable Python function: reverse a list.",
    ]
    assert [q["source_id"] for q in questions] == [f"{openthoughts}#0", f"{openthoughts}#1"]
    assert all(q["source"] == str(openthoughts) for q in questions)
    assert json.loads(questions[0]["metadata_json"]) == {"format": "openthoughts"}


def test_openthoughts_metadata_keeps_tests_not_traces(openthoughts_metadata: Path):
    questions, quarantined, _ = read_all(openthoughts_metadata)
    assert not quarantined
    first, second = questions
    assert first["text"] == "Given n integers, print their sum."
    assert first["source_id"] == f"{openthoughts_metadata}:1"
    assert (first["domain"], second["domain"]) == ("code", "math")
    meta = json.loads(first["metadata_json"])
    assert meta["format"] == "openthoughts-metadata"
    assert meta["source"] == "codeforces"
    assert json.loads(meta["test_cases"]) == {"inputs": ["1 2\n"], "outputs": ["3\n"]}
    assert "starter_code" in meta
    assert not {"deepseek_reasoning", "deepseek_solution", "ground_truth_solution"} & meta.keys()


def test_openthoughts3_first_human_turn(openthoughts3: Path):
    questions, quarantined, _ = read_all(openthoughts3)
    assert not quarantined
    assert [q["text"] for q in questions] == [
        "You are given a tree with n vertices. Count its leaves.",
        "Compute 7 * 6.",
    ]
    assert [q["difficulty"] for q in questions] == ["6", None]
    assert [q["domain"] for q in questions] == ["code", "math"]
    assert json.loads(questions[1]["metadata_json"]) == {
        "format": "openthoughts3",
        "source": "ai2-adapt-dev/openmath-2-math",
    }
    assert LONG_TRACE not in questions[0]["metadata_json"]


def test_opencodereasoning_placeholder_is_quarantined(opencodereasoning: Path):
    questions, quarantined, batches = read_all(opencodereasoning)
    assert sum(b.n_read for b in batches) == 2
    (question,) = questions
    assert question["text"] == "Read a string and print it reversed."
    assert question["source_id"] == "a3f1c2"
    assert question["difficulty"] == "8"
    meta = json.loads(question["metadata_json"])
    assert meta == {
        "format": "opencodereasoning",
        "source": "codeforces",
        "license": "cc-by-4.0",
        "dataset": "code_contests",
        "split": "train",
        "index": None,  # only the split_1 row has one
    }
    (bad,) = quarantined
    assert bad.locator == f"{opencodereasoning}:2"
    assert "placeholder" in bad.reason and "'-'" in bad.reason and "split_1" in bad.reason
    assert json.loads(bad.raw)["id"] == "b7e9d0"


def test_nemotron_first_user_message(nemotron: Path):
    questions, quarantined, _ = read_all(nemotron)
    assert not quarantined
    assert [q["text"] for q in questions] == [
        "Write a program that prints the n-th Fibonacci number.",
        "Solve x^2 = 9 for x > 0.",
    ]
    assert [q["source_id"] for q in questions] == ["0d1e6c3a-0001", "0d1e6c3a-0002"]
    assert [q["domain"] for q in questions] == ["code", "math"]
    meta = json.loads(questions[0]["metadata_json"])
    assert meta == {
        "format": "nemotron",
        "license": "cc-by-4.0",
        "generator": "DeepSeek-R1-0528",
        "version": "v1",
        "reasoning": "on",
        "metadata": "{}",
    }


def test_generic_default_field_and_ids(generic: Path):
    questions, quarantined, _ = read_all(generic)
    assert not quarantined
    assert [q["text"] for q in questions] == ["What is a heap?", "Sort 3 1 2."]
    assert [q["source_id"] for q in questions] == ["17", f"{generic}:2"]


def test_generic_dotted_question_field(tmp_path: Path):
    rows = [
        {"dialogs": [{"role": "user", "content": "first dialog turn"}, {"role": "bot", "content": "x"}]},
        {"dialogs": []},
    ]
    path = write_parquet(tmp_path / "dialogs.parquet", rows)
    questions, quarantined, _ = read_all(path)  # dialogs[0].content is a default candidate
    assert [q["text"] for q in questions] == ["first dialog turn"]
    assert [(q.locator, q.reason) for q in quarantined] == [
        (f"{path}#1", "no question: field 'dialogs[0].content' is missing or null")
    ]
    questions, _, _ = read_all(path, question_field="dialogs[1].content")
    assert [q["text"] for q in questions] == ["x"]


def test_generic_json_object_with_list(tmp_path: Path):
    path = tmp_path / "wrapped.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"version": 2, "info": {"n": 2}, "data": [{"q": "alpha?"}, {"q": "beta?"}]}, f)
    questions, quarantined, _ = read_all(path, fmt="generic", question_field="q")
    assert not quarantined
    assert [(q["text"], q["source_id"]) for q in questions] == [
        ("alpha?", f"{path}#0"),
        ("beta?", f"{path}#1"),
    ]


def test_explicit_format_overrides_detection(tmp_path: Path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"problem": "p1", "prompt": "ignored"}])
    questions, _, _ = read_all(path, fmt="openthoughts-metadata")
    assert [q["text"] for q in questions] == ["p1"]
    assert json.loads(questions[0]["metadata_json"])["format"] == "openthoughts-metadata"


# --- quarantine ----------------------------------------------------------------------------------


def test_bad_json_lines_are_quarantined_with_locators(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    lines = [
        json.dumps({"prompt": "good one"}).encode(),
        b'{"prompt": "unterminated',
        json.dumps({"prompt": "nul \u0000 inside"}).encode(),
        json.dumps({"answer": "no question here"}).encode(),
        json.dumps({"prompt": 42}).encode(),
        json.dumps({"prompt": " \t\r\n "}).encode(),
        b'{"prompt": "caf\xe9"}',  # latin-1, not UTF-8
        b"",  # blank lines are not rows
        json.dumps({"prompt": "x" * 51}).encode(),
        json.dumps(["not", "an", "object"]).encode(),
        json.dumps({"prompt": None}).encode(),
        json.dumps({"prompt": "last good one"}).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    questions, quarantined, batches = read_all(path, max_chars=50)
    assert sum(b.n_read for b in batches) == 11
    assert [q["text"] for q in questions] == ["good one", "last good one"]
    by_line = {q.locator.rsplit(":", 1)[1]: q for q in quarantined}
    assert all(q.locator.startswith(f"{path}:") and q.source == str(path) for q in quarantined)
    expected = {
        "2": "malformed JSON",
        "3": "question contains NUL bytes",
        "4": "no question: field 'prompt' is missing or null",
        "5": "question is not a string (got Int64)",
        "6": "question is empty or whitespace-only",
        "7": "invalid UTF-8",
        "9": "question is 51 chars, over max_chars=50",
        "10": "JSON line is not an object (got list)",
        "11": "no question: field 'prompt' is missing or null",
    }
    assert {k: q.reason for k, q in by_line.items()}.keys() == expected.keys()
    for line, prefix in expected.items():
        assert by_line[line].reason.startswith(prefix), (line, by_line[line].reason)
    assert by_line["2"].raw == '{"prompt": "unterminated'
    assert "caf" in by_line["7"].raw
    assert json.loads(by_line["5"].raw) == {"prompt": 42}


def test_raw_is_truncated(tmp_path: Path):
    path = write_jsonl(tmp_path / "long.jsonl", [{"prompt": "y" * 30_000}])
    _, (bad,), _ = read_all(path, max_chars=100)
    assert len(bad.raw) == 10_000


def test_turn_without_user_message(tmp_path: Path):
    rows = [
        {"uuid": "u1", "messages": [{"role": "assistant", "content": "hi"}]},
        {"uuid": "u2", "messages": [{"role": "user", "content": "the question"}]},
    ]
    path = write_jsonl(tmp_path / "nemo.jsonl", rows)
    questions, (bad,), _ = read_all(path)
    assert [q["source_id"] for q in questions] == ["u2"]
    assert bad.locator == f"{path}:1"
    assert (
        bad.reason
        == "no question: 'messages' has no turn with role='user' (or the first one has no 'content')"
    )


def test_unknown_schema_quarantines_every_row(tmp_path: Path):
    jsonl = write_jsonl(tmp_path / "unknown.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": 0}])
    parquet = write_parquet(tmp_path / "unknown.parquet", [{"text": "a", "label": 1}])
    for path, n, sep, first in ((jsonl, 2, ":", 1), (parquet, 1, "#", 0)):
        questions, quarantined, batches = read_all(path)
        assert not questions
        assert sum(b.n_read for b in batches) == len(quarantined) == n
        assert quarantined[0].locator == f"{path}{sep}{first}"
        assert quarantined[0].reason.startswith("unknown schema: columns ['label', 'text'] match no format")
        assert json.loads(quarantined[0].raw) == {"text": "a", "label": 1}


def test_corrupt_parquet_is_one_record(tmp_path: Path):
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(b"PAR1 this is not really parquet")
    questions, quarantined, batches = read_all(path)
    assert not questions and [b.n_read for b in batches] == [1]
    (bad,) = quarantined
    assert bad.locator == str(path)
    assert bad.reason.startswith("cannot read Parquet")


def test_truncated_gzip_keeps_rows_before_the_damage(tmp_path: Path):
    path = write_jsonl(
        tmp_path / "t.jsonl.gz", [{"prompt": f"q{i} " + "z" * 2000} for i in range(50)], gzip.open
    )
    path.write_bytes(path.read_bytes()[:-200])
    questions, quarantined, _ = read_all(path)
    assert questions and len(questions) < 50
    (bad,) = quarantined
    assert bad.locator == f"{path}:{len(questions) + 1}"
    assert bad.reason.startswith(f"cannot read the file from line {len(questions) + 1} on")


def test_broken_json_array(tmp_path: Path):
    path = tmp_path / "broken.json"
    path.write_text('[{"prompt": "one"}, 5, {"prompt": "three"}, {"prompt": ')
    questions, quarantined, batches = read_all(path)
    assert [q["text"] for q in questions] == ["one", "three"]
    assert [(q.locator, q.reason.split(":")[0]) for q in quarantined] == [
        (f"{path}#1", "row is not a JSON object (got int)"),
        (f"{path}#3", "cannot read the file from row 3 on"),
    ]
    assert sum(b.n_read for b in batches) == 4
    scalar = tmp_path / "scalar.json"
    scalar.write_text('"just a string"')
    _, (bad,), _ = read_all(scalar)
    assert (bad.locator, bad.reason) == (
        str(scalar),
        "cannot read JSON rows: holds neither an array of rows nor an object with a list of rows",
    )


def test_mixed_value_types_only_quarantine_the_odd_rows(tmp_path: Path):
    rows = [{"prompt": f"question {i}", "source": "s"} for i in range(40)]
    rows[7] = {"prompt": ["a", "list"], "source": "s"}
    rows[23] = {"prompt": "fine", "source": {"nested": True}}
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    questions, quarantined, _ = read_all(path)
    assert len(questions) == 39
    (bad,) = quarantined
    assert bad.locator == f"{path}:8"
    assert bad.reason == "question is not a string (got List(String))"
    odd = next(q for q in questions if q["text"] == "fine")
    assert json.loads(odd["metadata_json"])["source"] == {"nested": True}


# --- identity --------------------------------------------------------------------------------------


def test_question_id_normalization():
    nfc = "Caf\u00e9 costs 5\u20ac.\nWhy?"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc
    crlf = "  " + nfc.replace("\n", "\r\n") + "\r\n"
    assert normalize_text(nfd) == normalize_text(crlf) == nfc
    assert (
        question_id(nfd) == question_id(crlf) == question_id(nfc) == hashlib.sha256(nfc.encode()).hexdigest()
    )
    assert normalize_text("a\rb") == "a\nb"
    assert question_id("a") != question_id("b")


def test_stored_text_and_id_are_normalized(tmp_path: Path):
    nfc = "Caf\u00e9 r\u00e9sum\u00e9\nline two"
    variants = [nfc, unicodedata.normalize("NFD", nfc), nfc.replace("\n", "\r\n") + "\r\n", " " + nfc]
    path = write_jsonl(tmp_path / "v.jsonl", [{"question": v} for v in variants])
    questions, _, _ = read_all(path)
    assert {q["text"] for q in questions} == {nfc}
    assert {q["question_id"] for q in questions} == {question_id(nfc)}


# --- inputs and streaming --------------------------------------------------------------------------


def test_directory_input(tmp_path: Path, openthoughts3: Path, generic: Path):
    root = tmp_path / "dataset"
    (root / "b").mkdir(parents=True)
    (root / ".cache").mkdir()
    openthoughts3.rename(root / "b" / "part-0.parquet")
    generic.rename(root / "a.jsonl")
    write_jsonl(root / ".cache" / "hidden.jsonl", [{"prompt": "hidden"}])
    (root / "README.md").write_text("# not data")
    questions, quarantined, _ = read_all(root)
    assert not quarantined
    assert [q["text"] for q in questions] == [
        "What is a heap?",
        "Sort 3 1 2.",
        "You are given a tree with n vertices. Count its leaves.",
        "Compute 7 * 6.",
    ]
    assert {q["source"] for q in questions} == {str(root)}
    assert questions[1]["source_id"] == f"{root / 'a.jsonl'}:2"
    assert questions[2]["source_id"] == f"{root / 'b' / 'part-0.parquet'}#0"


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".json"])
def test_batch_rows_respected(tmp_path: Path, suffix: str):
    rows = [{"question": f"q{i}"} for i in range(25)]
    path = tmp_path / f"many{suffix}"
    if suffix == ".jsonl":
        write_jsonl(path, rows)
    elif suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=7)
    else:
        path.write_text(json.dumps(rows))
    questions, _, batches = read_all(path, batch_rows=10)
    assert [b.n_read for b in batches] == [10, 10, 5]
    assert [q["text"] for q in questions] == [f"q{i}" for i in range(25)]


def test_parquet_locators_across_batches(tmp_path: Path):
    rows = [{"prompt": f"p{i}" if i % 6 else ""} for i in range(20)]
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=4)
    _, quarantined, _ = read_all(path, batch_rows=5)
    assert [q.locator for q in quarantined] == [f"{path}#{i}" for i in (0, 6, 12, 18)]
    assert json.loads(quarantined[1].raw) == {"prompt": ""}


def test_empty_parquet(tmp_path: Path):
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"prompt": pa.array([], pa.string())}), path)
    questions, quarantined, batches = read_all(path)
    assert not questions and not quarantined
    assert sum(b.n_read for b in batches) == 0


def test_caller_errors_raise_at_call(tmp_path: Path, generic: Path):
    with pytest.raises(FileNotFoundError):
        read_source(str(tmp_path / "missing.jsonl"))
    with pytest.raises(ValueError, match="unknown format"):
        read_source(str(generic), "openthoughts4")
    with pytest.raises(ValueError, match="generic"):
        read_source(str(generic), "nemotron", question_field="prompt")
    with pytest.raises(ValueError, match="invalid question_field"):
        read_source(str(generic), question_field="dialogs[x]")
    with pytest.raises(ValueError, match="unsupported file type"):
        read_source(str(write_jsonl(tmp_path / "rows.txt", [{"prompt": "a"}])))
    with pytest.raises(ValueError, match="no .jsonl"):
        (tmp_path / "empty_dir").mkdir()
        read_source(str(tmp_path / "empty_dir"))
    with pytest.raises(ValueError, match="hf://org/name"):
        read_source("hf://only-org")
    with pytest.raises(ValueError, match="batch_rows"):
        read_source(str(generic), batch_rows=0)


def test_nested_domain_and_difficulty_are_kept_as_json(tmp_path: Path):
    rows = [{"prompt": "p1", "domain": ["graphs", "dp"], "difficulty": {"level": 3}}, {"prompt": "p2"}]
    questions, _, _ = read_all(write_jsonl(tmp_path / "n.jsonl", rows))
    assert [(q["domain"], q["difficulty"]) for q in questions] == [
        ('["graphs","dp"]', '{"level":3}'),
        (None, None),
    ]


def test_hub_source_reads_every_split_at_one_recorded_revision(monkeypatch: pytest.MonkeyPatch):
    calls = []

    def load_dataset(
        repo: str, config: str | None, *, streaming: bool, revision: str
    ) -> dict[str, list[dict]]:
        calls.append((repo, config, streaming, revision))
        return {
            "split_0": [
                {"id": "a", "input": "Print 1.", "output": "", "solution": "", "source": "codeforces"}
            ],
            "split_1": [{"id": "b", "input": "-", "output": "", "solution": "", "source": "taco"}],
        }

    class Hub:  # the dataset's current commit, asked for once when the source names no revision
        def dataset_info(self, repo: str) -> types.SimpleNamespace:
            calls.append(("dataset_info", repo))
            return types.SimpleNamespace(sha="c0ffee")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setattr("huggingface_hub.HfApi", Hub)
    questions, quarantined, _ = read_all("hf://nvidia/OpenCodeReasoning/split_x")
    assert calls == [
        ("dataset_info", "nvidia/OpenCodeReasoning"),
        ("nvidia/OpenCodeReasoning", "split_x", True, "c0ffee"),
    ]
    assert [(q["text"], q["source_id"], q["source"]) for q in questions] == [
        ("Print 1.", "a", "hf://nvidia/OpenCodeReasoning/split_x")
    ]
    (bad,) = quarantined
    assert bad.locator == "hf://nvidia/OpenCodeReasoning/split_x@c0ffee[split_1]#0"
    assert "placeholder" in bad.reason

    calls.clear()  # pinned in the config: read at that revision, nothing resolved
    _, quarantined, _ = read_all("hf://nvidia/OpenCodeReasoning/split_x@v1.1")
    assert calls == [("nvidia/OpenCodeReasoning", "split_x", True, "v1.1")]
    assert quarantined[0].locator == "hf://nvidia/OpenCodeReasoning/split_x@v1.1[split_1]#0"
    with pytest.raises(ValueError, match="expected hf://org/name"):
        read_all("hf://nvidia/OpenCodeReasoning@")


def test_parquet_strings_that_are_not_utf8(tmp_path: Path):
    # Parquet writers and readers do not check UTF-8; build such a file the way a broken writer would.
    values = pa.array([b"fine question", b"caf\xe9 question", b"another one"], pa.binary()).view(pa.string())
    turns = pa.StructArray.from_arrays([pa.array(["human"] * 3), values], ["from", "value"])
    conversations = pa.ListArray.from_arrays(pa.array([0, 1, 2, 3], pa.int32()), turns)
    path = tmp_path / "bad_utf8.parquet"
    pq.write_table(
        pa.table({"conversations": conversations, "domain": ["a", "b", "c"], "difficulty": [1, 2, 3]}), path
    )
    questions, quarantined, batches = read_all(path)
    assert [q["text"] for q in questions] == ["fine question", "another one"]
    assert [q["source_id"] for q in questions] == [f"{path}#0", f"{path}#2"]
    (bad,) = quarantined
    assert (bad.locator, bad.reason) == (f"{path}#1", "invalid UTF-8 in a string column")
    assert "caf\ufffd question" in bad.raw
    assert sum(b.n_read for b in batches) == 3


def test_damaged_parquet_keeps_rows_before_the_damage(tmp_path: Path):
    path = tmp_path / "damaged.parquet"
    rows = [{"prompt": f"question {i} " + "pad " * 40} for i in range(400)]
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=100, compression="snappy")
    data = bytearray(path.read_bytes())
    third = pq.ParquetFile(path).metadata.row_group(2).column(0)
    start = third.dictionary_page_offset or third.data_page_offset
    data[start + 40 : start + 140] = bytes(range(100))  # inside the third row group's pages
    path.write_bytes(bytes(data))
    questions, quarantined, batches = read_all(path, batch_rows=100)
    assert [q["text"] for q in questions] == [normalize_text(r["prompt"]) for r in rows[:200]]
    (bad,) = quarantined
    assert bad.locator == f"{path}#200"
    assert bad.reason.startswith("cannot read Parquet from row 200 on")
    assert sum(b.n_read for b in batches) == 201
