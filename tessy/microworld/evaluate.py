"""Evaluate a microworld model on held-out problems: pass@1, style purity, whether its answers carry
out the thinking's draft, and (teacher) judge agreement.

Answers are sampled in-process with transformers `generate` (batched, left padding); the answer's
last code block runs against the problem's hidden tests in a sandboxed subprocess.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from tessy.filtering.prompt import judge_prompt
from tessy.microworld.build import read_stamp
from tessy.microworld.formats import FORMATS, TEACHER_FORMAT, ChatFormat
from tessy.microworld.judge import parse_verdict
from tessy.microworld.problems import generate_others, generate_problems
from tessy.microworld.records import Problem
from tessy.microworld.styles import STEPS, is_pure, other_style
from tessy.microworld.traces import make_trace
from tessy.quality.code_exec import ExecResult, extract_code, run_tests


@dataclass
class EvalReport:
    model: str
    family: str  # chat-format family: "qwen3" (student) or "gpt-oss" (teacher)
    n: int
    pass_at_1: float
    style_purity: float
    closed: float  # share of samples whose thinking ended and whose answer finished
    # Answers whose code is the thinking's last draft: in its own samples, and after a given thinking
    # (both voices) whose draft is buggy half the time, whatever the family: copying, not recall.
    answer_follows_draft: float = float("nan")
    follows_given_draft: float = float("nan")
    judge_agreement: float | None = None  # teacher only: verdicts matching the ground truth
    by_family: dict[str, float] = field(default_factory=dict)  # pass@1 per problem family
    seconds: float = 0.0

    def summary(self) -> dict:
        out = {
            "pass_at_1": self.pass_at_1,
            "style_purity": self.style_purity,
            "answer_follows_draft": self.answer_follows_draft,
            "follows_given_draft": self.follows_given_draft,
            "n": self.n,
        }
        if self.judge_agreement is not None:
            out["judge_agreement"] = self.judge_agreement
        return out


def detect_format(tok: PreTrainedTokenizerBase) -> ChatFormat:
    """The chat format of a microworld tokenizer, from its own tokens."""
    vocab = tok.get_vocab()
    for fmt in FORMATS.values():
        if all(t in vocab for t in (*fmt.special_tokens, *fmt.plain_tokens)):
            return fmt
    raise ValueError("not a microworld tokenizer: it has neither the Qwen3 nor the harmony special tokens")


def sample(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: list[str],
    *,
    max_new_tokens: int,
    temperature: float = 0.6,
    top_p: float = 0.95,
    batch_size: int = 32,
    seed: int = 0,
) -> list[str]:
    """Completions of `prompts`, decoded with special tokens kept and cut after the eos token."""
    tok.padding_side = "left"
    torch.manual_seed(seed)
    # Explicit settings override the model's generation_config defaults (the student ships sampling ones).
    if temperature > 0:
        sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
    else:
        sampling = dict(do_sample=False, temperature=None, top_p=None, top_k=None)
    out = []
    for i in range(0, len(prompts), batch_size):
        enc = tok(prompts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            ids = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
                **sampling,
            )
        for row in ids[:, enc["input_ids"].shape[1] :]:
            text = tok.decode(row, skip_special_tokens=False)
            head, eos, _ = text.partition(tok.eos_token)
            out.append(head + eos)
    return out


def evaluate(
    model_dir: Path,
    n: int = 200,
    *,
    seed: int = 0,
    temperature: float = 0.6,
    top_p: float = 0.95,
    max_new_tokens: int | None = None,
    batch_size: int = 32,
    n_judge: int | None = None,
) -> EvalReport:
    """Sample answers to `n` held-out problems and score them; teachers also judge `n_judge` questions
    (half contest, half not; default n // 2)."""
    start = time.perf_counter()
    model_dir = Path(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    fmt = detect_format(tok)
    if max_new_tokens is None:
        stamp = read_stamp(model_dir)
        max_new_tokens = stamp["max_tokens"] if stamp else 1024
    gen = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, batch_size=batch_size)

    problems = generate_problems(n, seed, "eval")
    completions = sample(model, tok, [fmt.prompt(p.statement) for p in problems], seed=seed, **gen)
    parts = [fmt.split(c) for c in completions]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_score, problems, [answer for _, answer in parts]))
    by_family: dict[str, list[bool]] = defaultdict(list)
    for problem, result in zip(problems, results, strict=True):
        by_family[problem.family].append(result.passed)

    report = EvalReport(
        model=str(model_dir),
        family=fmt.family,
        n=n,
        pass_at_1=_share(r.passed for r in results),
        style_purity=_share(is_pure(thinking, fmt.style) for thinking, _ in parts),
        closed=_share(answer is not None for _, answer in parts),
        answer_follows_draft=_share(follows_draft(thinking, answer) for thinking, answer in parts),
        follows_given_draft=_follows_given_draft(model, tok, fmt, problems, seed, gen),
        by_family={name: _share(passed) for name, passed in by_family.items()},
    )
    if fmt is TEACHER_FORMAT:
        n_judge = n // 2 if n_judge is None else n_judge
        report.judge_agreement = _judge_agreement(model, tok, n_judge, seed, gen)
    report.seconds = time.perf_counter() - start
    return report


def follows_draft(thinking: str, answer: str | None) -> bool:
    """Whether the answer's code is the thinking's last code block (trailing whitespace aside)."""
    draft, code = extract_code(thinking), extract_code(answer) if answer is not None else None
    return draft is not None and code is not None and draft.rstrip() == code.rstrip()


def _follows_given_draft(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    fmt: ChatFormat,
    problems: list[Problem],
    seed: int,
    gen: dict,
) -> float:
    """The model answers after a given thinking in both voices whose draft is buggy half the time (on
    the families that have a bug), whatever the family's difficulty."""
    rng = Random(f"given-draft/{seed}")
    voices = [[rng.choice((fmt.style, other_style(fmt.style))) for _ in STEPS] for _ in problems]
    thinkings = [
        make_trace(p, fmt.style, rng, bug_rate=0.5, voices=v).thinking
        for p, v in zip(problems, voices, strict=True)
    ]
    prompts = [
        fmt.prompt(p.statement) + t + fmt.thinking_end for p, t in zip(problems, thinkings, strict=True)
    ]
    answers = [c.split(fmt.answer_end)[0] for c in sample(model, tok, prompts, seed=seed, **gen)]
    return _share(follows_draft(t, a) for t, a in zip(thinkings, answers, strict=True))


def _score(problem: Problem, answer: str | None) -> ExecResult:
    code = extract_code(answer) if answer is not None else None
    return run_tests(code, [t.input for t in problem.tests], [t.output for t in problem.tests])


def _judge_agreement(
    model: PreTrainedModel, tok: PreTrainedTokenizerBase, n: int, seed: int, gen: dict
) -> float:
    if n == 0:
        return float("nan")
    contest = [(p.statement, True) for p in generate_problems(n // 2, seed + 1, "eval")]
    others = [(q.text, False) for q in generate_others(n - len(contest), seed, "eval")]
    cases = contest + others
    prompts = [TEACHER_FORMAT.prompt(judge_prompt(text)) for text, _ in cases]
    completions = sample(model, tok, prompts, seed=seed, **gen)
    verdicts = [parse_verdict(TEACHER_FORMAT.split(c)[1] or "") for c in completions]
    return _share(v == truth for v, (_, truth) in zip(verdicts, cases, strict=True))


def _share(flags: Iterable[bool]) -> float:
    flags = list(flags)
    return sum(flags) / len(flags) if flags else float("nan")
