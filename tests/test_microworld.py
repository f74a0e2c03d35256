import json
import time
from random import Random

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from tessy.filtering.prompt import judge_prompt
from tessy.microworld.build import STAMP, _semantics, build, read_stamp
from tessy.microworld.cli import app
from tessy.microworld.corpus import (
    GIVEN_BUG_RATE,
    INTERLEAVED_RATE,
    MIXED_RATE,
    Conversation,
    conversations,
    mixed_conversation,
)
from tessy.microworld.evaluate import detect_format, evaluate, follows_draft
from tessy.microworld.families import FAMILIES
from tessy.microworld.formats import STUDENT_FORMAT, TEACHER_FORMAT
from tessy.microworld.judge import judge_example, parse_verdict
from tessy.microworld.problems import export_questions, generate_others, generate_problems, split_of
from tessy.microworld.styles import MARKERS, OPENERS, STEPS, is_pure, markers_in
from tessy.microworld.traces import garble, make_trace
from tessy.microworld.train import IGNORE, encode
from tessy.quality.code_exec import extract_code, run_tests

# ------------------------------------------------------------------ problems


def test_generator_is_deterministic_and_seeded():
    first = generate_problems(20, seed=3)
    assert first == generate_problems(20, seed=3)
    assert [p.statement for p in first] != [p.statement for p in generate_problems(20, seed=4)]
    assert generate_others(9, seed=3) == generate_others(9, seed=3)


def test_splits_are_disjoint_by_content():
    train = generate_problems(60, split="train")
    held_out = generate_problems(60, split="eval")
    assert not {p.statement for p in train} & {p.statement for p in held_out}
    assert all(split_of(p.statement) == "eval" for p in held_out)
    assert all(split_of(q.text) == "eval" for q in generate_others(12, split="eval"))


def test_families_are_graded_and_instances_vary():
    assert len(FAMILIES) >= 12
    assert {f.difficulty for f in FAMILIES} == {1, 2, 3}
    problems = generate_problems(5 * len(FAMILIES))
    same_family = [p for p in problems if p.family == "sum_list"]
    assert len({p.statement for p in same_family}) == len(same_family) == 5
    assert len({p.title for p in problems}) > len(FAMILIES)


def test_statements_have_contest_format():
    for problem in generate_problems(len(FAMILIES)):
        text = problem.statement
        assert text.startswith(problem.title)
        for section in ("Input", "Output", "Constraints"):
            assert f"\n{section}" in text
        assert 1 <= len(problem.samples) <= 2
        for sample in problem.samples:
            assert sample.input.strip().splitlines()[0] in text and sample.output.strip() in text
            assert sample in problem.tests


def test_reference_solutions_pass_and_buggy_ones_fail():
    for problem in generate_problems(len(FAMILIES), seed=1):
        inputs = [t.input for t in problem.tests]
        outputs = [t.output for t in problem.tests]
        assert len(problem.tests) >= 5
        result = run_tests(problem.solution, inputs, outputs)
        assert result.passed, (problem.family, result.detail)
        if problem.difficulty > 1:
            assert not run_tests(problem.buggy_solution, inputs, outputs).passed, problem.family
        else:
            assert problem.buggy_solution is None


# ------------------------------------------------------------------ traces


@pytest.mark.parametrize("style", ["student", "teacher"])
def test_style_spans_are_exact(style):
    for i, problem in enumerate(generate_problems(2 * len(FAMILIES))):
        trace = make_trace(problem, style, Random(i))
        pieces = trace.segments()
        assert "".join(text for text, _ in pieces) == trace.thinking
        assert all(a[1] != b[1] for a, b in zip(pieces, pieces[1:], strict=False))  # spans are maximal
        assert [(s, e) for s, e in trace.style_spans] == sorted(trace.style_spans)
        other = "teacher" if style == "student" else "student"
        for text, is_style in pieces:
            if is_style:
                assert markers_in(text, style), text
                assert not markers_in(text, other), text
            else:
                assert not markers_in(text, "student") and not markers_in(text, "teacher"), text
        assert is_pure(trace.thinking, style)
        assert extract_code(trace.answer) in (problem.solution, problem.buggy_solution)


def test_trace_openings_and_shares():
    problem = generate_problems(1)[0]
    student = make_trace(problem, "student", Random(0))
    teacher = make_trace(problem, "teacher", Random(0))
    assert student.thinking.startswith("Okay, let's see.") and student.style_spans[0][0] == 0
    assert teacher.thinking.startswith("We need to")

    def style_share(trace):
        return sum(e - s for s, e in trace.style_spans) / len(trace.thinking)

    assert style_share(student) > style_share(teacher)


def test_student_is_buggy_only_on_harder_families():
    problems = generate_problems(len(FAMILIES))
    for problem in problems:
        assert not make_trace(problem, "teacher", Random(0)).buggy
        student = make_trace(problem, "student", Random(0), bug_rate=1.0)
        assert student.buggy == (problem.difficulty > 1)
        if student.buggy:
            assert problem.plan.buggy_key in student.thinking
            assert extract_code(student.answer) == problem.buggy_solution
        assert not make_trace(problem, "student", Random(0), bug_rate=0.0).buggy


def test_mixed_conversations_hand_over_like_tessy():
    """Some training prompts already hold a thinking mixed from both styles: the teacher's end on a
    student opener, the student's after a capability span or after the teacher's closer (the teacher
    ended the thinking; the student only answers); any thinking target is pure own style."""
    for style, other in (("teacher", "student"), ("student", "teacher")):
        convs = conversations(style, 120, seed=3)
        fmt = STUDENT_FORMAT if style == "student" else TEACHER_FORMAT
        head = fmt.prompt_tail
        mixed = [c for c in convs if not c.prompt.endswith(head)]
        assert abs(len(mixed) - 120 * MIXED_RATE[style]) <= 20
        closed = 0
        for conv in mixed:
            prefix = conv.prompt.split(head, 1)[1]
            thinking, answer = fmt.split(conv.completion)
            assert answer is not None and extract_code(answer)
            assert follows_draft(prefix + thinking, answer)  # whoever wrote the draft
            if not thinking.strip():
                closed += 1
                assert style == "student" and markers_in(prefix, "teacher")[-1] in prefix[-30:]
                continue
            if style == "teacher":  # a cut inside a student step (maybe after its first word only)
                starts = {o.split()[0] for step in OPENERS["student"].values() for o in step}
                assert max(prefix.rfind(word) for word in starts) > max(
                    (prefix.rfind(m) for m in markers_in(prefix, "teacher")), default=-1
                )
                thinking = thinking.split("\n", 1)[-1]
            assert markers_in(thinking, style) and not markers_in(thinking, other)
        assert any(markers_in(c.prompt.split(head, 1)[1], other) for c in mixed)
        assert (closed > 3) == (style == "student"), (style, closed)


def test_the_teacher_is_handed_over_at_any_word_of_a_student_step():
    """TESSY's student predictor cuts where it scores a switch: after a filler, inside an opener, a few
    words into a clause. Half the teacher's hand-overs fall on such a word; the rest on an opener's end."""
    head = TEACHER_FORMAT.prompt_tail
    openers = tuple(o for step in OPENERS["student"].values() for o in step)
    ends = []
    rng = Random(1)
    for problem in generate_problems(300, 2, "train"):
        conv = mixed_conversation(problem, "teacher", rng)
        prefix = conv.prompt.split(head, 1)[1]
        assert prefix and not prefix[-1].isspace() and conv.completion[0].isspace()
        ends.append(prefix.endswith(openers))
    assert 0.45 < sum(ends) / len(ends) < 0.7, sum(ends) / len(ends)


def test_the_teacher_learns_every_clause_after_a_student_opener():
    """A share of the teacher's traces hand over at every step as TESSY does: the student's openers
    (and sometimes a clause's first words) and the garbled clauses stand in the completion but are
    not trained on; every student marker lies there, and the teacher's draft and answer are trained."""
    convs = conversations("teacher", 200, seed=6)
    interleaved = [c for c in convs if c.untrained]
    assert abs(len(interleaved) - 200 * INTERLEAVED_RATE["teacher"]) <= 25
    assert not any(c.untrained for c in conversations("student", 100, seed=6))
    for conv in interleaved:
        assert all(len(conv.prompt) <= a < b <= len(conv.text) for a, b in conv.untrained)
        trained = [
            i >= len(conv.prompt) and not any(a <= i < b for a, b in conv.untrained)
            for i in range(len(conv.text))
        ]
        kept = "".join(ch if keep else "\0" for ch, keep in zip(conv.text, trained, strict=True))
        assert markers_in(conv.text[len(conv.prompt) :], "student")
        assert not markers_in(kept, "student") and markers_in(kept, "teacher")  # the teacher's closer
        thinking, answer = TEACHER_FORMAT.split(conv.completion)
        assert answer is not None and follows_draft(thinking, answer)
        draft = conv.text.index("```python")
        assert all(trained[draft : conv.text.index("```", draft + 3) + 3])


def test_encode_masks_the_prompt_and_the_untrained_ranges(tiny):
    _, dirs = tiny
    tok = AutoTokenizer.from_pretrained(dirs["teacher"])
    conv = Conversation("Question here.", " Okay so the answer is four.", untrained=((17, 24),))
    ids, labels = encode(conv, tok)
    offsets = tok(conv.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    for token, label, (start, _) in zip(ids, labels, offsets, strict=True):
        assert label == (IGNORE if start < 14 or 17 <= start < 24 else token)
    assert IGNORE in labels[1:] and any(label != IGNORE for label in labels)


def test_a_given_key_steps_bug_rate_is_the_same_for_every_family():
    """A model must carry out the key step and draft it reads: when the prompt holds them, their
    correctness is drawn apart from the family's difficulty, so recalling the family's usual answer
    does not fit the data (the student's own key step is buggy on these families every time)."""
    hard = [p for p in generate_problems(200, 5, "train") if p.difficulty == 3 and p.buggy_solution]
    rng = Random(0)
    for style in ("student", "teacher"):
        given = []
        for problem in hard:
            conv = mixed_conversation(problem, style, rng)
            buggy = problem.plan.buggy_key in conv.text
            if problem.plan.key in conv.prompt or problem.plan.buggy_key in conv.prompt:
                given.append(buggy)
            if "```python" in conv.prompt:  # the draft itself was given: the answer carries it out
                assert (problem.buggy_solution in conv.completion) == buggy
        assert len(given) > 20 and abs(sum(given) / len(given) - GIVEN_BUG_RATE[style]) < 0.2, (style, given)


def test_a_student_step_after_a_teacher_step_may_start_on_its_line_break():
    """TESSY hands the student the teacher's finished line, so in mixed traces the student's opener
    sometimes follows a single newline; a model that never saw that ends its thinking there."""
    problem = generate_problems(1, 0, "train")[0]
    voices = ["teacher", "student"] * (len(STEPS) // 2)
    seps = set()
    for seed in range(40):
        trace = make_trace(problem, "teacher", Random(seed), voices=voices)
        for start, _ in trace.style_spans[1::2]:  # the student's openers
            head = trace.thinking[start : start + 2]
            seps.add("\n" if head[0] == "\n" and head[1] != "\n" else "other")
    assert seps == {"\n", "other"}


def test_garbled_clauses_leave_the_draft_and_the_answer():
    """A garbled clause (as the tiny teacher writes some under TESSY) changes only that clause: the
    draft and the answer that carries it out stay, so the student learns to follow the draft."""
    problem = next(p for p in generate_problems(40, 0, "train") if p.buggy_solution)
    for seed in range(20):
        clean = make_trace(problem, "student", Random(seed), bug_rate=0.0)
        noisy = make_trace(problem, "student", Random(seed), bug_rate=0.0, garbled=["goal", "key"])
        assert noisy.answer == clean.answer and follows_draft(noisy.thinking, noisy.answer)
        text = noisy.thinking.lower()
        assert problem.plan.method.lower() in text and problem.plan.implementation.lower() in text
        others = [problem.plan.method, problem.plan.edge]
        assert garble(problem.plan.key, others, Random(seed)) != problem.plan.key


def test_follows_draft():
    draft = "```python\nprint(1)\n```"
    assert follows_draft(f"Plan.\n{draft}\nDone.", f"So:\n\n{draft}")
    assert not follows_draft(f"Plan.\n{draft}", "```python\nprint(2)\n```")
    assert not follows_draft("no draft", "```python\nprint(1)\n```") and not follows_draft(draft, None)


def test_markers_are_disjoint():
    assert not set(MARKERS["student"]) & set(MARKERS["teacher"])
    assert is_pure("Okay, let's see. So it works.", "student")
    assert not is_pure("Okay, let's see. Approach: add.", "student")
    assert not is_pure("add the numbers", "teacher")


# ------------------------------------------------------------------ formats, judge, export

STUDENT_TEXT = "<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n<think>\nT.\n</think>\n\nA.<|im_end|>"
TEACHER_TEXT = (
    "<|start|>system<|message|>Reasoning: high<|end|><|start|>user<|message|>Q?<|end|>"
    "<|start|>assistant<|channel|>analysis<|message|>T.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>A.<|return|>"
)


def test_format_strings():
    assert STUDENT_FORMAT.render("Q?", "T.", "A.") == STUDENT_TEXT
    assert TEACHER_FORMAT.render("Q?", "T.", "A.") == TEACHER_TEXT
    assert STUDENT_FORMAT.prompt("Q?") == "<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    assert TEACHER_FORMAT.prompt("Q?").endswith("<|start|>assistant<|channel|>analysis<|message|>")
    for fmt, text in ((STUDENT_FORMAT, STUDENT_TEXT), (TEACHER_FORMAT, TEACHER_TEXT)):
        completion = text[len(fmt.prompt("Q?")) :]
        assert fmt.split(completion) == ("T.", "A.")
        assert fmt.split("T. cut off") == ("T. cut off", None)


def test_judge_examples():
    problem = generate_problems(1)[0]
    yes = judge_example(problem.statement, "code", Random(0))
    assert yes.prompt == judge_prompt(problem.statement) and parse_verdict(yes.answer) is True
    other = generate_others(1)[0]
    no = judge_example(other.text, other.domain, Random(0))
    assert parse_verdict(no.answer) is False and "\n" not in no.answer
    assert parse_verdict("maybe") is None
    with pytest.raises(ValueError):
        judge_example("?", "poetry", Random(0))


def test_export_questions(tmp_path):
    path = export_questions(tmp_path / "q.jsonl", n_contest=3, n_other=3, seed=2)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 6
    keys = {"problem", "deepseek_reasoning", "deepseek_solution", "ground_truth_solution", "domain", "source"}
    assert all(keys | {"test_cases", "starter_code"} <= set(r) for r in rows)
    code = [r for r in rows if r["domain"] == "code"]
    assert len(code) == 3 and {r["domain"] for r in rows} - {"code"} <= {"math", "science", "chat"}
    for row in code:
        tests = json.loads(row["test_cases"])
        assert run_tests(row["ground_truth_solution"], tests["inputs"], tests["outputs"]).passed
        assert split_of(row["problem"]) == "eval"
    assert all(r["test_cases"] == "" for r in rows if r["domain"] != "code")
    assert path.read_text() == export_questions(tmp_path / "again.jsonl", 3, 3, seed=2).read_text()


# ------------------------------------------------------------------ tiny models


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    return out, build(out, preset="tiny")


def test_tiny_build_layout(tiny):
    _, dirs = tiny
    assert set(dirs) == {"student", "teacher"}
    for role, path in dirs.items():
        for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json", STAMP):
            assert (path / name).is_file(), name
        assert read_stamp(path)["role"] == role
    student = json.loads((dirs["student"] / "config.json").read_text())
    teacher = json.loads((dirs["teacher"] / "config.json").read_text())
    assert student["model_type"] == "qwen3" and teacher["model_type"] == "llama"
    assert student["head_dim"] >= 64 and teacher["head_dim"] >= 64
    assert student["max_position_embeddings"] >= 2048


@pytest.mark.parametrize("role", ["student", "teacher"])
def test_tiny_tokenizer(tiny, role):
    _, dirs = tiny
    tok = AutoTokenizer.from_pretrained(dirs[role])
    fmt = STUDENT_FORMAT if role == "student" else TEACHER_FORMAT
    assert detect_format(tok) is fmt
    assert tok.eos_token == fmt.eos
    for token in (*fmt.special_tokens, *fmt.plain_tokens):
        assert len(tok(token, add_special_tokens=False)["input_ids"]) == 1, token
    problem = generate_problems(1, split="eval")[0]
    trace = make_trace(problem, role, Random(0))
    text = fmt.render(problem.statement, trace.thinking, trace.answer)
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    messages = [
        {"role": "user", "content": problem.statement},
        {"role": "assistant", "content": trace.answer, "reasoning_content": trace.thinking},
    ]
    assert tok.apply_chat_template(messages, tokenize=False) == text
    prompt = tok.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == fmt.prompt(problem.statement)


def test_tokenizers_differ(tiny):
    _, dirs = tiny
    student, teacher = (AutoTokenizer.from_pretrained(dirs[r]) for r in ("student", "teacher"))
    assert student.get_vocab() != teacher.get_vocab()
    # The student splits digits one by one, the teacher groups them by three.
    assert len(student.backend_tokenizer.pre_tokenizer.pre_tokenize_str("12345")) == 5
    assert len(teacher.backend_tokenizer.pre_tokenizer.pre_tokenize_str("12345")) == 2


def test_tiny_generation_stops_at_eos(tiny):
    _, dirs = tiny
    for path in dirs.values():
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
        assert model.generation_config.eos_token_id == tok.eos_token_id
        enc = tok(
            detect_format(tok).prompt("Sum two numbers."), return_tensors="pt", add_special_tokens=False
        )
        torch.manual_seed(0)
        out = model.generate(**enc, max_new_tokens=6, do_sample=False)
        assert out.shape[1] > enc["input_ids"].shape[1]


def test_build_is_cached(tiny):
    out, dirs = tiny
    weights = dirs["teacher"] / "model.safetensors"
    before = weights.stat().st_mtime_ns
    start = time.perf_counter()
    assert build(out, preset="tiny") == dirs
    assert time.perf_counter() - start < 2
    assert weights.stat().st_mtime_ns == before


def test_code_version_ignores_docstrings_and_comments():
    plain = "def f(x):\n    return x + 1\n"
    documented = 'def f(x):\n    """Add one."""\n    # why\n    return x + 1\n'
    assert _semantics(plain) == _semantics(documented)
    assert _semantics(plain) != _semantics(plain.replace("1", "2"))


def test_build_is_deterministic(tiny, tmp_path):
    _, dirs = tiny
    again = build(tmp_path, preset="tiny")
    for role, path in dirs.items():
        for name in ("model.safetensors", "tokenizer.json"):
            assert (path / name).read_bytes() == (again[role] / name).read_bytes(), (role, name)


def test_tiny_evaluate_and_cli(tiny, tmp_path):
    _, dirs = tiny
    report = evaluate(dirs["teacher"], 2, max_new_tokens=8, n_judge=2)
    assert report.n == 2 and 0 <= report.pass_at_1 <= 1 and 0 <= report.style_purity <= 1
    assert report.judge_agreement is not None
    runner = CliRunner()
    result = runner.invoke(
        app, ["eval", "--model", str(dirs["student"]), "--n", "2", "--max-new-tokens", "8", "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == {"pass_at_1", "style_purity", "answer_follows_draft", "follows_given_draft", "n"}
    assert summary["n"] == 2
    result = runner.invoke(app, ["export", str(tmp_path / "q.jsonl"), "--n-contest", "2", "--n-other", "1"])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "q.jsonl").read_text().splitlines()) == 3
