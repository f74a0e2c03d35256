"""Prompt formats per model family: the thinking prompt, where generated thinking ends, and how to
close the thinking so the model writes its answer next.

A family whose model's tokenizer ships a chat template renders its prompts with that template, so a
prompt is exactly what the model was trained on; the family's constant prompt is the fallback without
one (tests/test_chat_templates.py checks that it equals the real templates' rendering).
Prompts are raw text for /v1/completions; the server adds the BOS token when the tokenizer wants one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

_HARMONY_FINAL = "<|start|>assistant<|channel|>final<|message|>"


@dataclass(frozen=True)
class Family:
    name: str
    # The fallback prompt: "{question}" and "{date}" (today) are filled with str.replace, so braces in a
    # question are safe.
    prompt: str
    # Opens the thinking after the chat template's generation prompt, when the template does not.
    opener: str
    # Any of these in generated text ends the thinking; the earliest wins.
    end_markers: tuple[str, ...]
    # Appended to the thinking so the next tokens are the answer.
    closer: str
    # Whether a reply that stops (end of sequence) inside the thinking, with no marker, ends the
    # thinking; each family says why below.
    eos_ends_thinking: bool
    # Extra variables for the chat template.
    template_kwargs: Mapping[str, str] = field(default_factory=dict, compare=False)
    # The model's tokenizer, when it ships a chat template (see with_tokenizer).
    tokenizer: Any = field(default=None, repr=False, compare=False)

    def with_tokenizer(self, tokenizer: Any) -> Family:
        """This family rendering its prompts with the tokenizer's chat template, if it ships one."""
        return replace(self, tokenizer=tokenizer) if getattr(tokenizer, "chat_template", None) else self

    def thinking_prompt(self, question: str) -> str:
        if self.tokenizer is None:
            # The date first, so a question's own "{date}" stays as written.
            return self.prompt.replace("{date}", _today()).replace("{question}", question)
        rendered = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": question}],
            tokenize=False,
            add_generation_prompt=True,
            enable_thinking=True,
            **self.template_kwargs,
        )
        rendered = _without_added_bos(self.tokenizer, rendered)
        return rendered if rendered.rstrip().endswith(self.opener.strip()) else rendered + self.opener

    def find_end(self, text: str) -> tuple[int, int] | None:
        """(start, end) char offsets of the earliest end-of-thinking marker in generated text."""
        hits = [(i, i + len(m)) for m in self.end_markers if (i := text.find(m)) >= 0]
        # At equal starts the longest marker wins, so the answer starts after all of it.
        return min(hits, key=lambda h: (h[0], -h[1])) if hits else None

    def partial_end(self, text: str) -> int:
        """How many chars at the end of `text` begin an end-of-thinking marker (0 for none)."""
        return max(
            (n for m in self.end_markers for n in range(len(m) - 1, 0, -1) if text.endswith(m[:n])), default=0
        )

    def end_of_thinking(self, text: str) -> int | None:
        """Char offset where the thinking in `text` ends, or None while it goes on."""
        hit = self.find_end(text)
        return hit[0] if hit else None

    def split_thinking(self, text: str) -> tuple[str, str | None]:
        """(thinking, answer) of generated text; answer is None when thinking has not ended."""
        hit = self.find_end(text)
        return (text, None) if hit is None else (text[: hit[0]], text[hit[1] :])

    def close_thinking(self, thinking: str) -> str:
        """The thinking closed: its trailing whitespace is the closer's alone, as the chat format has
        it, whatever spaces or newlines the writer left before its marker."""
        return thinking.rstrip() + self.closer

    def answer_prompt(self, question: str, thinking: str) -> str:
        """The prompt after which the model writes its final answer to `question`."""
        return self.thinking_prompt(question) + self.close_thinking(thinking)


def _today() -> str:
    """Today's date as the GPT-OSS template writes it (`strftime_now("%Y-%m-%d")`, local time)."""
    return datetime.now().strftime("%Y-%m-%d")


def _without_added_bos(tokenizer: Any, rendered: str) -> str:
    """The rendering without the template's BOS when the tokenizer adds one itself (DeepSeek-R1): the
    server encodes the raw prompt with special tokens, so keeping it would make two."""
    bos = tokenizer.bos_token
    if bos and rendered.startswith(bos) and tokenizer("")["input_ids"][:1] == [tokenizer.bos_token_id]:
        return rendered[len(bos) :]
    return rendered


QWEN3 = Family(
    name="qwen3",
    prompt="<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n<think>\n",
    opener="<think>\n",
    end_markers=("</think>",),
    closer="\n</think>\n\n",
    # The end of sequence is <|im_end|>, the end of the assistant's turn: it has nothing more to think.
    eos_ends_thinking=True,
)

GPT_OSS = Family(
    name="gpt-oss",
    # Its template's system message, with the reasoning effort the paper's teacher uses.
    prompt=(
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
        "Knowledge cutoff: 2024-06\nCurrent date: {date}\n\nReasoning: high\n\n"
        "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>"
        "<|start|>user<|message|>{question}<|end|>"
        "<|start|>assistant<|channel|>analysis<|message|>"
    ),
    # The template's generation prompt stops at "<|start|>assistant"; the thinking is the analysis channel.
    opener="<|channel|>analysis<|message|>",
    # The final-channel header as decoded with special tokens kept, and with them skipped
    # (only the plain words "assistant" and "final" are left).
    end_markers=("<|end|>" + _HARMONY_FINAL, _HARMONY_FINAL, "<|channel|>final<|message|>", "assistantfinal"),
    closer="<|end|>" + _HARMONY_FINAL,
    # Its stop tokens (<|return|>, <|call|>) end the message being written, here the analysis
    # message (as <|end|> does), so the analysis channel is over.
    eos_ends_thinking=True,
    # The template's default is medium.
    template_kwargs={"reasoning_effort": "high"},
)

DEEPSEEK_R1 = Family(
    name="deepseek-r1",
    prompt="<｜User｜>{question}<｜Assistant｜><think>\n",
    opener="<think>\n",
    end_markers=("</think>",),
    closer="\n</think>\n\n",
    # The end of sequence ends the assistant's turn, as for Qwen3.
    eos_ends_thinking=True,
)

FAMILIES: dict[str, Family] = {f.name: f for f in (QWEN3, GPT_OSS, DEEPSEEK_R1)}


def generic_family(tokenizer: Any) -> Family:
    """Any model whose tokenizer ships a chat template. If the tokenizer knows `<think>` and the
    template does not open it, we do, so the thinking/answer split works as for Qwen3."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{type(tokenizer).__name__} has no chat template; name a family explicitly")
    return Family(
        name="generic",
        prompt="",  # never used: the template renders every prompt
        opener="<think>\n" if "<think>" in tokenizer.get_vocab() else "",
        end_markers=("</think>",),
        closer="\n</think>\n\n",
        # The end of sequence ends the turn; for a model without <think> it is the only way to end.
        eos_ends_thinking=True,
        tokenizer=tokenizer,
    )


def detect_family(tokenizer: Any) -> Family:
    """The family whose special tokens the tokenizer has; its chat template otherwise."""
    vocab = tokenizer.get_vocab()
    if "<|channel|>" in vocab and "<|start|>" in vocab:
        return GPT_OSS.with_tokenizer(tokenizer)
    if "<｜Assistant｜>" in vocab:
        return DEEPSEEK_R1.with_tokenizer(tokenizer)
    if "<|im_start|>" in vocab and "<think>" in vocab:
        return QWEN3.with_tokenizer(tokenizer)
    return generic_family(tokenizer)


def get_family(name: str, tokenizer: Any = None) -> Family:
    """Look a family up by name: one of FAMILIES, "generic" or "auto" (both need the tokenizer). Given
    the model's tokenizer, a named family renders with its chat template when it ships one."""
    if name in FAMILIES:
        return FAMILIES[name] if tokenizer is None else FAMILIES[name].with_tokenizer(tokenizer)
    if name in ("generic", "auto"):
        if tokenizer is None:
            raise ValueError(f"family {name!r} needs the model's tokenizer")
        return generic_family(tokenizer) if name == "generic" else detect_family(tokenizer)
    raise ValueError(f"unknown model family {name!r}; known: {sorted(FAMILIES)} + generic, auto")
