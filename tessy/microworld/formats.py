"""Chat formats of the microworld models: the student speaks Qwen3, the teacher GPT-OSS harmony.

The strings here are a contract: prompt rendering elsewhere in the project relies on them exactly.
Each format also carries the jinja `chat_template` its tokenizer is saved with; it renders the same
strings (`add_generation_prompt` opens the assistant turn in thinking mode).
"""

from __future__ import annotations

from dataclasses import dataclass

from tessy.microworld.styles import Style

_STUDENT_TEMPLATE = """\
{%- for message in messages -%}
{%- if message['role'] == 'assistant' -%}
{%- set thinking = message['reasoning_content'] or message['thinking'] or '' -%}
{{- '<|im_start|>assistant\\n<think>\\n' + thinking + '\\n</think>\\n\\n' -}}
{{- message['content'] + '<|im_end|>' -}}
{%- else -%}
{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' -}}
{%- endif -%}
{%- if not loop.last -%}{{- '\\n' -}}{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '\\n<|im_start|>assistant\\n<think>\\n' -}}{%- endif -%}
"""

_TEACHER_TEMPLATE = """\
{{- '<|start|>system<|message|>Reasoning: high<|end|>' -}}
{%- for message in messages -%}
{%- if message['role'] == 'assistant' -%}
{%- set thinking = message['reasoning_content'] or message['thinking'] -%}
{%- if thinking -%}
{{- '<|start|>assistant<|channel|>analysis<|message|>' + thinking + '<|end|>' -}}
{%- endif -%}
{{- '<|start|>assistant<|channel|>final<|message|>' + message['content'] + '<|return|>' -}}
{%- elif message['role'] == 'system' -%}
{{- '<|start|>developer<|message|>' + message['content'] + '<|end|>' -}}
{%- else -%}
{{- '<|start|>' + message['role'] + '<|message|>' + message['content'] + '<|end|>' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|start|>assistant<|channel|>analysis<|message|>' -}}{%- endif -%}
"""


@dataclass(frozen=True)
class ChatFormat:
    family: str  # the template family name used across the project: "qwen3" or "gpt-oss"
    style: Style
    special_tokens: tuple[str, ...]  # skipped when decoding with skip_special_tokens
    plain_tokens: tuple[str, ...]  # single tokens that stay visible in decoded text
    eos: str
    pad: str
    prompt_head: str  # before the question
    prompt_tail: str  # after the question: opens the assistant turn in thinking mode
    thinking_end: str  # between thinking and answer
    answer_end: str
    chat_template: str

    def prompt(self, question: str) -> str:
        """The prompt that asks the model to think about and answer `question`."""
        return f"{self.prompt_head}{question}{self.prompt_tail}"

    def render(self, question: str, thinking: str, answer: str) -> str:
        """A whole conversation: prompt, thinking, answer and end of turn."""
        return f"{self.prompt(question)}{thinking}{self.thinking_end}{answer}{self.answer_end}"

    def split(self, completion: str) -> tuple[str, str | None]:
        """(thinking, answer) of a completion decoded with special tokens kept; answer None if unclosed."""
        thinking, sep, rest = completion.partition(self.thinking_end)
        if not sep:
            return completion, None
        return thinking, rest.split(self.answer_end)[0]


STUDENT_FORMAT = ChatFormat(
    family="qwen3",
    style="student",
    special_tokens=("<|im_start|>", "<|im_end|>", "<|endoftext|>"),
    plain_tokens=("<think>", "</think>"),
    eos="<|im_end|>",
    pad="<|endoftext|>",
    prompt_head="<|im_start|>user\n",
    prompt_tail="<|im_end|>\n<|im_start|>assistant\n<think>\n",
    thinking_end="\n</think>\n\n",
    answer_end="<|im_end|>",
    chat_template=_STUDENT_TEMPLATE,
)

TEACHER_FORMAT = ChatFormat(
    family="gpt-oss",
    style="teacher",
    special_tokens=("<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>", "<|endoftext|>"),
    plain_tokens=(),
    eos="<|return|>",
    pad="<|endoftext|>",
    prompt_head="<|start|>system<|message|>Reasoning: high<|end|><|start|>user<|message|>",
    prompt_tail="<|end|><|start|>assistant<|channel|>analysis<|message|>",
    thinking_end="<|end|><|start|>assistant<|channel|>final<|message|>",
    answer_end="<|return|>",
    chat_template=_TEACHER_TEMPLATE,
)

FORMATS = {"student": STUDENT_FORMAT, "teacher": TEACHER_FORMAT}
