"""Build the microworld teacher/student model pair on the CPU.

Preset "default" (seed 0), trained with batch 4 and AdamW (lr 2e-3, warmup, cosine) on a loss
averaged per conversation. Part of each model's problems start from a thinking mixed from both styles
(the student 0.7, the teacher 0.35), most of those handed over at the end (for the student, most of
those after the teacher's closing line, as TESSY's teacher ends the thinking; for the teacher, half of
them cut at another word of the student's step than its opener's end, as TESSY's predictors cut),
with a given key step buggy whatever the family (the student 0.25, the teacher 0.5); 0.3 of the
teacher's are written as TESSY writes them, the student opening every step, with the student's text
not trained on (see `corpus.py`):
- student: Qwen3ForCausalLM, 1.15M parameters (hidden 128, 3 layers, 4 heads x 64, 2 KV heads),
  Qwen3 chat format, byte-level BPE of 2,050 tokens (digits split one by one); 8,000 conversations,
  2,000 steps, 3.74M tokens, final completion loss 0.07. Given a correct draft on the families it
  gets wrong (teacher voice, teacher's closing line), it carried it out 0.81 of the time with half of
  its given drafts buggy and fewer of them, 0.98 with the rates of `corpus.py` (a buggy one: 0.91).
- teacher: LlamaForCausalLM, 3.93M parameters (hidden 256, 4 layers, 4 heads x 64, 2 KV heads),
  GPT-OSS harmony format, byte-level BPE of 3,072 tokens (digits grouped by three); 2,800
  conversations plus 400 contest-judge turns, 800 steps, 1.44M tokens, final completion loss 0.07.
Measured on the 2-core machine: student 385-404 s, teacher 286-289 s, about 11.5 min wall in all
(with 2,000 teacher conversations: 217-221 s, 10.5 min). Held-out eval (`tessy microworld eval`, n=100,
temperature 0.6): teacher pass@1 0.90, answer follows its own draft 0.99, a given draft 0.87;
student 0.44, 0.96, 0.95; style purity 1.0 for both; teacher contest-judge agreement 1.0.
Preset "tiny" builds a real, loadable, barely trained pair in seconds for unit tests.

Each model folder holds safetensors weights, config, generation_config, tokenizer files with a chat
template, and `microworld.json`, a stamp with the hash of (preset, seed, generator code) and the
training statistics. A build whose stamps match does nothing.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from random import Random

import torch
from filelock import FileLock
from transformers import (
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from tessy.microworld.corpus import conversations
from tessy.microworld.formats import FORMATS
from tessy.microworld.presets import PRESETS, ModelSpec, Preset
from tessy.microworld.styles import STYLES, Style
from tessy.microworld.tokenizer import train_tokenizer
from tessy.microworld.train import encode, make_batches, train

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(".tessy/models")
STAMP = "microworld.json"
HEAD_DIM = 64
# Everything that shapes the models' data, tokenizers and weights.
_CODE = [
    Path(__file__).parent / name
    for name in (
        "build.py", "corpus.py", "families.py", "formats.py", "judge.py", "negatives.py", "presets.py",
        "problems.py", "records.py", "styles.py", "tokenizer.py", "traces.py", "train.py",
    )
] + [Path(__file__).parents[1] / "filtering" / "prompt.py"]  # fmt: skip


def _semantics(source: str) -> str:
    """The syntax tree without docstrings: comments, docstrings and layout do not change a build."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:]
    return ast.dump(tree)


def code_version() -> str:
    """Hash of the generator and trainer sources."""
    digest = hashlib.sha256()
    for path in _CODE:
        digest.update(f"{path.name}\0{_semantics(path.read_text())}\0".encode())
    return digest.hexdigest()[:16]


def build_key(preset: Preset, seed: int) -> str:
    blob = json.dumps({"preset": asdict(preset), "seed": seed, "code": code_version()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def model_dirs(out_dir: Path | None = None, preset: str = "default") -> dict[Style, Path]:
    """Where `build` puts the models: `.tessy/models/{role}` by default, `.tessy/models/{preset}/{role}`
    for other presets, `out_dir/{role}` when `out_dir` is given."""
    root = out_dir if out_dir is not None else DEFAULT_DIR if preset == "default" else DEFAULT_DIR / preset
    return {role: Path(root) / role for role in STYLES}


def read_stamp(model_dir: Path) -> dict | None:
    path = Path(model_dir) / STAMP
    return json.loads(path.read_text()) if path.is_file() else None


def build(out_dir: Path | None = None, preset: str = "default", seed: int = 0) -> dict[str, Path]:
    """Build (or reuse) the student and teacher; returns {"student": dir, "teacher": dir}."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    settings = PRESETS[preset]
    dirs = model_dirs(out_dir, preset)
    root = dirs["student"].parent
    root.mkdir(parents=True, exist_ok=True)
    key = build_key(settings, seed)
    with FileLock(root / ".build.lock"):
        for role, path in dirs.items():
            stamp = read_stamp(path)
            if stamp is not None and stamp.get("key") == key:
                log.info("microworld %s is up to date: %s", role, path)
                continue
            _build_one(role, settings, seed, key, path)
    return {role: path.resolve() for role, path in dirs.items()}


def _new_model(role: Style, spec: ModelSpec, tok: PreTrainedTokenizerFast, preset: Preset) -> PreTrainedModel:
    common = dict(
        vocab_size=len(tok),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        head_dim=HEAD_DIM,
        max_position_embeddings=preset.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    if role == "student":
        model: PreTrainedModel = Qwen3ForCausalLM(Qwen3Config(**common))
        # Qwen3's recommended thinking-mode sampling, as its release ships it.
        sampling = dict(do_sample=True, temperature=0.6, top_p=0.95, top_k=20)
    else:
        model = LlamaForCausalLM(LlamaConfig(**common))
        sampling = {}
    model.generation_config = GenerationConfig(
        bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **sampling
    )
    return model


def _build_one(role: Style, preset: Preset, seed: int, key: str, dest: Path) -> None:
    spec: ModelSpec = getattr(preset, role)
    fmt = FORMATS[role]
    start = time.perf_counter()
    n_judge = preset.judge_examples if role == "teacher" else 0
    convs = conversations(role, spec.examples, seed, n_judge=n_judge)
    tok = train_tokenizer([c.text for c in convs[: preset.tokenizer_texts]], fmt, spec.vocab_size)
    encoded = [encode(c, tok) for c in convs]
    batches = make_batches(encoded, preset.batch_size, tok.pad_token_id, Random(f"batches/{role}/{seed}"))
    torch.manual_seed(int(hashlib.sha256(f"{role}/{seed}".encode()).hexdigest()[:8], 16))
    model = _new_model(role, spec, tok, preset)
    stats = train(model, batches, spec.lr, preset.warmup_steps, desc=f"microworld {role} ({preset.name})")
    stamp = {
        "key": key,
        "role": role,
        "family": fmt.family,
        "preset": preset.name,
        "seed": seed,
        "code_version": code_version(),
        "architecture": type(model).__name__,
        "n_params": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tok),
        "conversations": len(convs),
        "max_tokens": max(len(ids) for ids, _ in encoded),
        "train": {**asdict(stats), "tokens_per_s": round(stats.tokens_per_s)},
        "build_seconds": round(time.perf_counter() - start, 1),
    }
    _save(model, tok, stamp, dest)
    log.info("microworld %s built in %.0f s: %s", role, stamp["build_seconds"], dest)


def _save(model: PreTrainedModel, tok: PreTrainedTokenizerFast, stamp: dict, dest: Path) -> None:
    """Write into a temporary folder, then swap it in, so a crash never leaves a half model."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
