"""Build presets: model sizes, data sizes and optimizer settings for the microworld pair."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    vocab_size: int  # BPE target; the trained vocabulary can come out smaller on a small corpus
    hidden_size: int
    layers: int
    heads: int  # head_dim is fixed at 64: vLLM's CPU attention rejects smaller heads
    kv_heads: int
    intermediate_size: int
    examples: int  # training conversations (one fresh problem each)
    lr: float


@dataclass(frozen=True)
class Preset:
    name: str
    student: ModelSpec
    teacher: ModelSpec
    judge_examples: int  # extra teacher conversations that judge contest vs non-contest questions
    tokenizer_texts: int  # conversations the tokenizers are trained on
    batch_size: int
    warmup_steps: int
    max_position_embeddings: int = 2048


PRESETS: dict[str, Preset] = {
    "default": Preset(
        name="default",
        student=ModelSpec(2048, 128, 3, 4, 2, 512, examples=8000, lr=2e-3),
        teacher=ModelSpec(3072, 256, 4, 4, 2, 768, examples=2800, lr=2e-3),
        judge_examples=400,
        tokenizer_texts=1500,
        batch_size=4,  # many small steps: these models learn the domain from update count, not batch size
        warmup_steps=20,
    ),
    "tiny": Preset(
        name="tiny",
        student=ModelSpec(512, 64, 1, 1, 1, 128, examples=12, lr=3e-3),
        teacher=ModelSpec(640, 128, 1, 2, 1, 256, examples=12, lr=3e-3),
        judge_examples=4,
        tokenizer_texts=16,
        batch_size=4,
        warmup_steps=2,
    ),
}
