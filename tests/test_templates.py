"""Prompt rendering and end-of-thinking detection per model family."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from tessy import templates
from tessy.templates import DEEPSEEK_R1, GPT_OSS, QWEN3, detect_family, get_family

Q = "Sum {a, b}?"  # braces must survive rendering


def _tokenizer(specials: list[str], chat_template: str | None = None) -> PreTrainedTokenizerFast:
    vocab = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz ")}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="a"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok)
    fast.add_special_tokens({"additional_special_tokens": specials})
    if chat_template:
        fast.chat_template = chat_template
    return fast


def test_qwen3_prompt_end_and_answer() -> None:
    assert QWEN3.thinking_prompt(Q) == f"<|im_start|>user\n{Q}<|im_end|>\n<|im_start|>assistant\n<think>\n"
    generated = "Okay, let's see. Add them.\n</think>\n\nThe answer is a+b."
    assert QWEN3.end_of_thinking(generated) == generated.index("\n</think>") + 1
    assert QWEN3.split_thinking(generated) == ("Okay, let's see. Add them.\n", "\n\nThe answer is a+b.")
    assert QWEN3.end_of_thinking("still thinking") is None
    assert QWEN3.split_thinking("still thinking") == ("still thinking", None)
    assert QWEN3.answer_prompt(Q, "Hmm.") == QWEN3.thinking_prompt(Q) + "Hmm.\n</think>\n\n"


@pytest.mark.parametrize(
    "generated",
    [
        "We need a+b. Simple.assistantfinalThe answer is a+b.",  # special tokens skipped
        "We need a+b. Simple.<|end|><|start|>assistant<|channel|>final<|message|>The answer is a+b.",
    ],
)
def test_gpt_oss_final_channel_in_both_decodings(generated: str) -> None:
    assert GPT_OSS.end_of_thinking(generated) == len("We need a+b. Simple.")
    assert GPT_OSS.split_thinking(generated) == ("We need a+b. Simple.", "The answer is a+b.")


def test_gpt_oss_prompt_and_close(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templates, "_today", lambda: "2025-08-05")
    prompt = GPT_OSS.thinking_prompt(Q)
    assert prompt == (
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
        "Knowledge cutoff: 2024-06\nCurrent date: 2025-08-05\n\nReasoning: high\n\n"
        "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>"
        f"<|start|>user<|message|>{Q}<|end|>"
        "<|start|>assistant<|channel|>analysis<|message|>"
    )
    assert "<|message|>When is {date}?<|end|>" in GPT_OSS.thinking_prompt("When is {date}?")
    assert GPT_OSS.answer_prompt(Q, "Think.") == (
        prompt + "Think.<|end|><|start|>assistant<|channel|>final<|message|>"
    )


def test_deepseek_r1() -> None:
    assert DEEPSEEK_R1.thinking_prompt(Q) == f"<｜User｜>{Q}<｜Assistant｜><think>\n"
    assert DEEPSEEK_R1.end_of_thinking("abc</think>x") == 3


_TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)


@pytest.mark.parametrize(
    ("family", "closed"),
    [
        (QWEN3, "x\n</think>\n\n"),
        (DEEPSEEK_R1, "x\n</think>\n\n"),
        (GPT_OSS, "x<|end|><|start|>assistant<|channel|>final<|message|>"),
        (get_family("generic", _tokenizer(["<think>", "</think>"], _TEMPLATE)), "x\n</think>\n\n"),
    ],
    ids=["qwen3", "deepseek-r1", "gpt-oss", "generic"],
)
def test_answer_prompt_has_only_the_formats_whitespace_before_the_closer(family, closed) -> None:
    for thinking in ("x", "x \n\n", "x\n", "x\t "):
        assert family.answer_prompt(Q, thinking) == family.thinking_prompt(Q) + closed, repr(thinking)


def test_earliest_marker_wins() -> None:
    text = "a</think>b</think>c"
    assert QWEN3.split_thinking(text) == ("a", "b</think>c")


def test_partial_end_counts_a_markers_first_chars_at_the_texts_end() -> None:
    assert GPT_OSS.partial_end("Done.assistant") == len("assistant")
    assert GPT_OSS.partial_end("Done.<|end|><|start|>") == len("<|end|><|start|>")
    assert QWEN3.partial_end("so x </thi") == len("</thi")
    assert (
        QWEN3.partial_end("so x") == 0 and QWEN3.partial_end("Done.</think>") == 0
    )  # a whole marker is found


def test_detect_family_from_special_tokens() -> None:
    assert detect_family(_tokenizer(["<|start|>", "<|channel|>", "<|message|>", "<|end|>"])) is GPT_OSS
    assert detect_family(_tokenizer(["<|im_start|>", "<|im_end|>", "<think>", "</think>"])) is QWEN3
    assert detect_family(_tokenizer(["<｜User｜>", "<｜Assistant｜>"])) is DEEPSEEK_R1
    with pytest.raises(ValueError, match="no chat template"):
        detect_family(_tokenizer(["<s>"]))


def test_generic_uses_chat_template_and_opens_thinking() -> None:
    family = detect_family(_tokenizer(["<think>", "</think>"], _TEMPLATE))
    assert family.name == "generic"
    assert family.thinking_prompt(Q) == f"[user]{Q}\n[assistant]<think>\n"
    assert family.answer_prompt(Q, "ok") == f"[user]{Q}\n[assistant]<think>\nok\n</think>\n\n"
    plain = get_family("generic", _tokenizer([], _TEMPLATE))
    assert plain.thinking_prompt(Q) == f"[user]{Q}\n[assistant]"


def test_get_family() -> None:
    assert get_family("qwen3") is QWEN3 and get_family("gpt-oss") is GPT_OSS
    with pytest.raises(ValueError, match="unknown model family"):
        get_family("llama")
    with pytest.raises(ValueError, match="needs the model's tokenizer"):
        get_family("auto")
