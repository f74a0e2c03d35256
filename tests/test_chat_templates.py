"""Prompts equal each model's own chat template: the real Qwen3, GPT-OSS and DeepSeek-R1 templates
render through their family exactly as the family's fallback constant does, and the microworld
tokenizers' templates exactly as their formats."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast
from transformers.utils import chat_template_utils

from tessy import templates
from tessy.microworld.formats import FORMATS
from tessy.microworld.tokenizer import train_tokenizer
from tessy.templates import DEEPSEEK_R1, GPT_OSS, QWEN3, Family, get_family

# The public templates, copied verbatim (llama.cpp vendors the first two in models/templates/):
# qwen3.jinja: the Qwen3 release template, shared by Qwen3-8B (llama.cpp: Qwen-Qwen3-0.6B.jinja)
# gpt-oss.jinja: openai/gpt-oss-120b's chat_template.jinja (llama.cpp: openai-gpt-oss-120b.jinja)
# deepseek-r1.jinja: the "chat_template" of deepseek-ai/DeepSeek-R1's tokenizer_config.json
FIXTURES = Path(__file__).parent / "fixtures" / "chat_templates"
# family -> (its special tokens, the BOS token its tokenizer adds to every encoding)
TOKENS: dict[str, tuple[list[str], str | None]] = {
    "qwen3": (["<|im_start|>", "<|im_end|>", "<think>", "</think>"], None),
    "gpt-oss": (["<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>"], None),
    "deepseek-r1": (["<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>"], "<｜begin▁of▁sentence｜>"),
}
Q = "Sum {a, b} and print {date}."  # braces, and the fallback's own placeholders, must survive


class _Clock(datetime):
    @classmethod
    def now(cls, tz=None) -> datetime:
        return datetime(2025, 8, 5, 12, 0)


@pytest.fixture(autouse=True)
def _frozen_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPT-OSS template's strftime_now and the fallback's {date} read the same day."""
    monkeypatch.setattr(chat_template_utils, "datetime", _Clock)
    monkeypatch.setattr(templates, "datetime", _Clock)


def _tokenizer(family: str) -> PreTrainedTokenizerFast:
    """A tiny tokenizer with the family's special tokens and its real chat template."""
    specials, bos = TOKENS[family]
    tok = Tokenizer(models.WordLevel({c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz ")}, "a"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok)
    fast.add_special_tokens({"additional_special_tokens": specials})
    if bos:  # as DeepSeek-R1's tokenizer does (add_bos_token)
        fast.add_special_tokens({"bos_token": bos})
        fast.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, fast.bos_token_id)]
        )
    fast.chat_template = (FIXTURES / f"{family}.jinja").read_text()
    return fast


@pytest.mark.parametrize("family", [QWEN3, GPT_OSS, DEEPSEEK_R1], ids=lambda f: f.name)
def test_fallback_prompt_equals_the_real_template(family: Family) -> None:
    rendered = get_family(family.name, _tokenizer(family.name))
    assert rendered.tokenizer is not None
    assert rendered.thinking_prompt(Q) == family.thinking_prompt(Q)


def test_gpt_oss_fallback_is_todays_system_message() -> None:
    assert "Current date: 2025-08-05\n\nReasoning: high\n\n" in GPT_OSS.thinking_prompt(Q)


# DeepSeek-R1's template drops the thinking from assistant turns, so it renders no such turn.
@pytest.mark.parametrize(
    ("family", "thinking_field", "end_of_turn"),
    [(QWEN3, "reasoning_content", "<|im_end|>\n"), (GPT_OSS, "thinking", "<|return|>")],
    ids=["qwen3", "gpt-oss"],
)
def test_answer_prompt_is_the_templates_finished_turn(family: Family, thinking_field: str, end_of_turn: str):
    turn = {"role": "assistant", "content": "a+b", thinking_field: "Add them."}
    rendered = _tokenizer(family.name).apply_chat_template(
        [{"role": "user", "content": Q}, turn], tokenize=False, **family.template_kwargs
    )
    assert rendered == family.answer_prompt(Q, "Add them.") + "a+b" + end_of_turn


@pytest.mark.parametrize("role", ["student", "teacher"])
def test_microworld_templates_render_their_formats(role: str) -> None:
    fmt = FORMATS[role]
    tokenizer = train_tokenizer([fmt.render("Sum a and b.", "Add them.", "a+b")], fmt, vocab_size=300)
    family = get_family(fmt.family, tokenizer)
    assert family.tokenizer is tokenizer
    assert family.thinking_prompt(Q) == fmt.prompt(Q)
    assert family.answer_prompt(Q, "Add them.") + "a+b" + fmt.answer_end == fmt.render(Q, "Add them.", "a+b")
