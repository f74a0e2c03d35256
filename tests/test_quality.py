"""QA metrics, output similarity, student NLL, the Great Expectations gate, plots and the report, on a
hand-made trace frame whose expected directions are known."""

import base64
import json
import re

import duckdb
import matplotlib.image
import polars as pl
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

from tessy.quality.expectations import GateConfig, row_checks, validate_release
from tessy.quality.measure import code_exec_mode, measure_traces
from tessy.quality.metrics import method_metrics, per_trace_sums, repetition_rate, trace_metrics
from tessy.quality.nll import _fit, student_nll
from tessy.quality.plots import write_plots
from tessy.quality.report import markdown_report, summary_table
from tessy.quality.similarity import similarity_per_trace, tfidf_vectors
from tessy.quality.traces import thinking_of
from tessy.templates import QWEN3

ADD_OK = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
ADD_WRONG = "```python\na, b = map(int, input().split())\nprint(a - b)\n```"
MAX_OK = "```python\ninput()\nprint(max(map(int, input().split())))\n```"
ADD_TESTS = json.dumps({"inputs": ["1 2\n", "10 5\n"], "outputs": ["3\n", "15\n"]})
MAX_TESTS = json.dumps({"inputs": ["3\n1 5 2\n", "2\n-1 -4\n"], "outputs": ["5\n", "-1\n"]})

QUESTIONS = {
    "q-add": ("Read two integers and print their sum.", ADD_TESTS),
    "q-max": ("Read n and then n integers; print the largest.", MAX_TESTS),
    "q-talk": ("Explain why the sum of two even numbers is even.", None),
}
STUDENT = {
    "q-add": "Okay, let's see. So I need to read two numbers. Hmm, then I just print their sum, right? Yeah.",
    "q-max": "Okay, let's see. So we read n first. Hmm, wait, then the list. I think max works here. Yeah.",
    "q-talk": "Okay, let's see. So an even number is two times something. Hmm, the sum is two times more.",
}
TEACHER = {
    "q-add": "We parse integers a and b from stdin; output a+b. Complexity O(1). Edge: negatives fine.",
    "q-max": "Parse n, then array A of length n; answer = max(A). Linear scan, O(n). Negatives allowed.",
    "q-talk": "Let x=2p, y=2q for integers p, q. Then x+y=2(p+q), divisible by 2. QED.",
}
# TESSY: student glue around teacher reasoning.
TESSY = {q: f"Okay, let's see. {TEACHER[q]} Hmm, so that should be it. Yeah." for q in QUESTIONS}
ANSWERS = {
    "student-only": {"q-add": ADD_OK, "q-max": MAX_OK, "q-talk": "Because 2p + 2q = 2(p + q)."},
    "tessy": {"q-add": ADD_OK, "q-max": MAX_OK, "q-talk": "Because 2p + 2q = 2(p + q)."},
    "teacher-only": {"q-add": ADD_WRONG, "q-max": "The answer is max(A).", "q-talk": "x+y=2(p+q)."},
}
THINKING = {"student-only": STUDENT, "tessy": TESSY, "teacher-only": TEACHER}


def _row(qid: str, method: str, thinking: str, answer: str, **over) -> dict:
    question, tests = QUESTIONS[qid]
    n = len(thinking.split()) + len(answer.split()) + 4
    student = {"student-only": n, "teacher-only": 0}.get(method, n // 3)
    row = {
        "trace_id": f"{method}:{qid}",
        "question_id": qid,
        "method": method,
        "text": f"<think>\n{thinking}\n</think>\n\n{answer}",
        "answer": answer,
        "n_tokens": n,
        "n_tokens_teacher": n - student,
        "n_tokens_student": student,
        "n_switches": 4 if method == "tessy" else 0,
        "n_wasted_tokens": 3 if method == "tessy" else 0,
        "status": "ok",
        "attempts": 1,
        "question": question,
        "test_cases": tests,
    }
    return row | over


def make_frame() -> pl.DataFrame:
    rows = [_row(q, m, THINKING[m][q], ANSWERS[m][q]) for m in THINKING for q in QUESTIONS]
    failed = _row(
        "q-add", "tessy", "", "", trace_id="tessy:q-add:failed", status="failed", text="", attempts=5
    )
    return pl.DataFrame([*rows, failed | {"n_tokens": 0, "n_tokens_teacher": 0, "n_tokens_student": 0}])


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return make_frame()


@pytest.fixture(scope="module")
def tokenizer(frame) -> PreTrainedTokenizerFast:
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([*frame["text"], *frame["question"]], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
    )


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory, tokenizer, frame):
    """A tiny Qwen3 briefly trained on the student-only responses, so it prefers the student's style."""
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen3ForCausalLM(config)
    texts = [
        QWEN3.thinking_prompt(q) + thinking_of(t)
        for q, t, m in frame.select("question", "text", "method").iter_rows()
        if m == "student-only"
    ]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
    path = tmp_path_factory.mktemp("student")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def qa(frame, tokenizer, student_dir):
    # As the QA parts compute them: code runs only in a sandbox.
    computed = trace_metrics(frame, run_code=code_exec_mode(True, allow_unsafe=False)[0])
    return measure_traces(
        frame, tokenizer, computed, student_nll=lambda f, steps: student_nll(f, student_dir, steps=steps)
    )


def _per_method(frame: pl.DataFrame, per_trace: pl.DataFrame, run_id: str) -> pl.DataFrame:
    """`method_metrics` in DuckDB over a frame, as the warehouse runs it over its tables."""
    for column in ("n_generated_tokens", "n_failed_tokens"):
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Int64).alias(column))
    con = duckdb.connect()
    con.register("traces", frame.to_arrow())
    con.register("per_trace", per_trace.to_arrow())
    return method_metrics(con, run_id, traces="traces", sums=per_trace_sums("per_trace", "traces"))


@pytest.fixture(scope="module")
def per_method(qa, frame):
    return _per_method(frame, qa.per_trace, "run-1")


def _value(long: pl.DataFrame, subject: str, metric: str) -> float:
    hit = long.filter((pl.col("subject_id") == subject) & (pl.col("metric") == metric))
    assert hit.height == 1, (subject, metric, hit)
    return hit["value"][0]


def test_repetition_rate_is_higher_for_a_loop():
    fresh = "we read the input then sort the values and print the median of the sorted list"
    loop = "so we check it again " * 8
    assert repetition_rate(fresh) == 0.0
    assert repetition_rate(loop) > 0.7
    assert repetition_rate("too short") == 0.0


def test_per_trace_metrics(qa, frame):
    m = qa.per_trace
    assert set(m.columns) == {"subject_id", "metric", "value"}
    assert "tessy:q-add:failed" not in set(m["subject_id"])  # failed traces have no text to measure
    assert _value(m, "student-only:q-add", "student_share") == 1.0
    assert _value(m, "teacher-only:q-add", "student_share") == 0.0
    assert 0 < _value(m, "tessy:q-max", "student_share") < 1
    # code questions: the answer's code is run against the tests
    assert _value(m, "student-only:q-add", "pass_rate") == 1.0
    assert _value(m, "teacher-only:q-add", "pass_rate") == 0.0
    assert _value(m, "teacher-only:q-add", "solved") == 0.0
    assert _value(m, "tessy:q-max", "pass_rate") == 1.0
    # an answer without a code block to a code question is not an answer
    assert _value(m, "teacher-only:q-max", "answer_present") == 0.0
    assert _value(m, "teacher-only:q-talk", "answer_present") == 1.0
    assert m.filter((pl.col("subject_id") == "tessy:q-talk") & (pl.col("metric") == "pass_rate")).height == 0


def test_partial_pass_rate(frame):
    half = json.dumps({"inputs": ["1 2\n", "10 5\n"], "outputs": ["3\n", "16\n"]})
    one = frame.filter(pl.col("trace_id") == "tessy:q-add").with_columns(test_cases=pl.lit(half))
    assert _value(trace_metrics(one), "tessy:q-add", "pass_rate") == 0.5


def test_bad_test_cases_name_the_question(frame):
    broken = frame.with_columns(test_cases=pl.lit('{"inputs": ["1"]}'))
    with pytest.raises(ValueError, match="question q-"):
        trace_metrics(broken, run_code=False)


def test_similarity_to_student(qa, per_method, frame, tokenizer):
    per_trace = qa.per_trace.filter(metric="similarity_to_student")
    assert per_trace.height == 6  # tessy and teacher-only, each ok one; student-only has no other
    sim = {
        m: _value(per_method, f"run-1/{m}", "similarity_to_student_mean") for m in ("tessy", "teacher-only")
    }
    assert sim["teacher-only"] < sim["tessy"] < 1.0
    assert per_method.filter(subject_id="run-1/student-only", metric="similarity_to_student_mean").height == 0
    student = frame.filter(pl.col("method") == "student-only")
    copies = student.with_columns(method=pl.lit("tessy"), trace_id=pl.col("trace_id") + ":copy")
    vectors = tfidf_vectors(pl.concat([student, copies]), tokenizer)
    assert vectors.matrix.shape[0] == 6
    copied = similarity_per_trace(vectors, set(copies["trace_id"]))
    assert copied.height == 3 and copied["value"].to_list() == pytest.approx([1.0] * 3)
    # The copies are TESSY's: a student-only trace still has no other student-only response.
    assert similarity_per_trace(vectors, set(student["trace_id"])).height == 0


def test_student_nll_prefers_the_students_own_text(qa):
    nll = qa.per_trace.filter(pl.col("metric") == "student_nll")
    assert nll.height == 9
    for q in QUESTIONS:
        assert _value(nll, f"student-only:{q}", "student_nll") < _value(
            nll, f"teacher-only:{q}", "student_nll"
        )


def test_student_nll_scores_only_thinking_tokens(frame, tokenizer, student_dir):
    one = frame.filter(pl.col("trace_id") == "tessy:q-max")
    batched = student_nll(frame, student_dir, max_batch_tokens=4096)
    got = _value(batched, "tessy:q-max", "student_nll")
    assert _value(student_nll(one, student_dir), "tessy:q-max", "student_nll") == pytest.approx(got, rel=1e-4)
    model = Qwen3ForCausalLM.from_pretrained(student_dir).eval()
    prompt = tokenizer(QWEN3.thinking_prompt(one["question"][0]))["input_ids"]
    thinking = tokenizer(thinking_of(one["text"][0]), add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + thinking])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1 : -1]
    expected = torch.nn.functional.cross_entropy(logits, ids[0, len(prompt) :]).item()
    assert got == pytest.approx(expected, rel=1e-4)


def test_fit_keeps_the_thinking_start_and_the_prompt_end():
    assert _fit([1, 2, 3], [4, 5], 10) == ([1, 2, 3, 4, 5], 3)
    assert _fit([1, 2, 3], [4, 5, 6, 7, 8, 9], 6) == ([1, 2, 3, 4, 5, 6], 3)
    assert _fit(list(range(10)), [20, 21, 22, 23, 24, 25, 26], 8) == ([6, 7, 8, 9, 20, 21, 22, 23], 4)


def test_method_metrics(qa, per_method, frame):
    m = per_method
    assert _value(m, "run-1/tessy", "n_samples") == 4
    assert _value(m, "run-1/tessy", "n_failed") == 1
    assert _value(m, "run-1/tessy", "failure_rate") == 0.25
    assert _value(m, "run-1/teacher-only", "failure_rate") == 0.0
    assert _value(m, "run-1/student-only", "pass_rate_mean") == 1.0
    assert _value(m, "run-1/teacher-only", "pass_rate_mean") == 0.0
    assert _value(m, "run-1/student-only", "student_share_mean") == 1.0
    similarity = qa.per_trace.filter(metric="similarity_to_student")
    tessy = similarity.filter(pl.col("subject_id").str.starts_with("tessy:"))
    assert _value(m, "run-1/tessy", "similarity_to_student_mean") == pytest.approx(tessy["value"].mean())
    p10, p50, p90 = (_value(m, "run-1/teacher-only", f"n_tokens_p{q}") for q in (10, 50, 90))
    assert p10 <= p50 <= p90
    ok = frame.filter(method="teacher-only", status="ok")["n_tokens"].cast(pl.Float64)
    assert p50 == pytest.approx(ok.quantile(0.5, "linear"))


def test_method_metrics_without_similarity(frame):
    per_trace = trace_metrics(frame, run_code=False)
    m = _per_method(frame, per_trace, "r")
    assert m.filter(pl.col("metric") == "similarity_to_student_mean").height == 0
    assert m.filter(pl.col("metric") == "pass_rate_mean").height == 0


def test_generated_per_kept_counts_failed_attempts_and_traces(frame):
    """Every generated token over the tokens kept in finished traces; traces counted before the
    accounting existed (null) are left out of both."""
    counted = frame.with_columns(
        n_generated_tokens=pl.col("n_tokens") + pl.col("n_wasted_tokens"), n_failed_tokens=pl.lit(0)
    ).with_columns(
        # The failed trace generated 40 tokens; one finished trace also had a failed attempt of 20.
        n_generated_tokens=pl.when(pl.col("status") == "failed")
        .then(40)
        .when(pl.col("trace_id") == "tessy:q-max")
        .then(pl.col("n_generated_tokens") + 20)
        .otherwise("n_generated_tokens"),
        n_failed_tokens=pl.when(pl.col("status") == "failed")
        .then(40)
        .when(pl.col("trace_id") == "tessy:q-max")
        .then(20)
        .otherwise(0),
    )
    per_trace = trace_metrics(counted, run_code=False)
    m = _per_method(counted, per_trace, "r")
    tessy = counted.filter(method="tessy")
    kept = tessy.filter(status="ok")["n_tokens"].sum()
    assert _value(m, "r/tessy", "generated_per_kept") == pytest.approx(
        tessy["n_generated_tokens"].sum() / kept
    )
    assert _value(m, "r/student-only", "generated_per_kept") == 1.0
    uncounted = counted.with_columns(
        n_generated_tokens=pl.when(pl.col("method") == "teacher-only")
        .then(None)
        .otherwise("n_generated_tokens")
    )
    m = _per_method(uncounted, trace_metrics(uncounted, run_code=False), "r")
    assert m.filter(subject_id="r/teacher-only", metric="generated_per_kept").height == 0
    assert m.filter(metric="generated_per_kept").height == 2


def checked(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with its row checks, as the release stage gives the gate (duplicate rows kept)."""
    return frame.hstack(row_checks(frame))


def test_gate_passes_on_a_good_candidate(frame):
    good = frame.filter(pl.col("status") == "ok", pl.col("trace_id") != "teacher-only:q-max")
    result = validate_release(checked(good))
    assert result.success, result.failed
    assert result.failed == []
    assert {o.name for o in result.outcomes} >= {"trace_id_unique", "status_ok", "answer_present"}
    json.dumps(result.raw)
    json.dumps([o.observed for o in result.outcomes])


def test_gate_fails_and_names_what_broke(frame):
    broken = frame.with_columns(
        method=pl.when(pl.col("trace_id") == "tessy:q-max").then(pl.lit("teacher-mix")).otherwise("method"),
        n_wasted_tokens=pl.when(pl.col("trace_id") == "tessy:q-talk").then(-1).otherwise("n_wasted_tokens"),
        n_tokens_student=pl.when(pl.col("trace_id") == "student-only:q-max")
        .then(pl.col("n_tokens") * 3)
        .otherwise("n_tokens_student"),
    )
    broken = pl.concat([broken, broken.head(1)])  # a duplicate trace
    result = validate_release(checked(broken), GateConfig(max_tokens=10_000))
    assert not result.success
    assert set(result.failed) == {
        "trace_id_unique",
        "one_trace_per_question_and_method",
        "status_ok",  # the failed trace
        "method_allowed",
        "text_format",  # the failed trace has no text
        "answer_present",  # teacher-only q-max has no code, the failed trace no answer
        "n_tokens_positive",
        "n_wasted_tokens_non_negative",
        "authored_tokens_within_total",
        "student_share_in_unit_interval",
    }
    observed = {o.name: o.observed for o in result.outcomes}
    assert observed["method_allowed"]["unexpected_sample"] == ["teacher-mix"]
    assert observed["n_wasted_tokens_non_negative"]["unexpected_count"] == 1


def test_gate_needs_its_columns(frame):
    with pytest.raises(ValueError, match="text_format"):
        validate_release(checked(frame).drop("text_format"))
    with pytest.raises(ValueError, match="test_cases"):
        row_checks(frame.drop("test_cases"))


def test_plots_are_valid_pngs(qa, frame, tmp_path):
    paths = write_plots(frame, qa.tfidf, tmp_path / "plots")
    assert sorted(p.name for p in paths) == ["lengths.png", "similarity_pca.png", "teacher_share.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.image.imread(path).shape[0] > 100


def test_report(per_method, frame, tmp_path):
    summary = summary_table(per_method, "run-1")
    assert [r["method"] for r in summary] == ["student-only", "teacher-only", "tessy"]
    tessy = summary[2]
    assert tessy["samples"] == 4 and tessy["failed"] == 1
    assert tessy["similarity_to_student"] == _value(per_method, "run-1/tessy", "similarity_to_student_mean")
    assert summary[0]["similarity_to_student"] is None
    plots = write_plots(frame, None, tmp_path / "plots")
    gate = validate_release(checked(frame))
    text = markdown_report(summary, plots, run_id="run-1", gate=gate, relative_to=tmp_path)
    assert "| method | samples | failed |" in text
    assert "![lengths](plots/lengths.png)" in text
    assert "**FAILED**" in text and "`status_ok`" in text
    # Embedded for viewers that cannot reach the worker's files (the Prefect UI): the PNG bytes themselves.
    embedded = markdown_report(summary, plots, run_id="run-1", embed=True)
    sources = re.findall(r"!\[lengths\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", embedded)
    assert len(sources) == 1 and base64.b64decode(sources[0]) == (tmp_path / "plots/lengths.png").read_bytes()
