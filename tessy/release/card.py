"""The dataset card (README.md) of a release: Hub metadata with the `configs` block, then how the data
was made, its QA metrics, its lineage and the manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData

from tessy.quality.report import evaluation_section, markdown_table

TAGS = ("tessy", "synthetic", "reasoning", "sft", "code")
# What a published card shows of a release's manifest; never the config itself, whose endpoints,
# paths and hosts are internal.
PUBLIC_MANIFEST = (
    "code_version",
    "config_hash",
    "dropped",
    "files",
    "methods",
    "metrics",
    "predictor_ids",
    "student_model",
    "synthesis",
    "teacher_model",
)


@dataclass(frozen=True)
class CardInfo:
    name: str
    release_id: str
    content_hash: str
    n_rows: int
    student_model: str
    teacher_model: str
    repo_id: str | None = None  # where it will be published, for the loading example
    configs: list[str] = field(default_factory=lambda: ["default"])
    predictor_ids: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    parent_release_id: str | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)  # the QA summary table, one row per method
    evaluation: dict[str, Any] | None = None  # the newest evaluate run's summary, made before the release
    manifest: dict[str, Any] = field(default_factory=dict)
    license: str = "apache-2.0"
    tags: list[str] = field(default_factory=lambda: list(TAGS))


def card_data(info: CardInfo) -> DatasetCardData:
    return DatasetCardData(
        pretty_name=info.name,
        license=info.license,
        tags=info.tags,
        task_categories=["text-generation"],
        configs=[
            {"config_name": c, "data_files": [{"split": "train", "path": f"data/{c}/train-*"}]}
            for c in info.configs
        ],
    )


def _body(info: CardInfo) -> str:
    predictors = ", ".join(f"`{p}`" for p in info.predictor_ids) or "none"
    load = f'load_dataset("{info.repo_id or "<repo_id>"}", "{info.configs[0]}", split="train")'
    return "\n".join(
        [
            f"# {info.name}",
            "",
            "Supervised fine-tuning data for a reasoning model, synthesized with TESSY (teacher-student",
            "cooperation, arXiv 2604.14164): the teacher writes the capability spans of each response (the",
            "reasoning, code and numbers), the student writes the style spans and the final answer, and two",
            "boundary predictors decide where each span ends. The data stays in the student's own style, so",
            "fine-tuning the student on it does not pull it towards a foreign distribution.",
            "",
            "| | |",
            "|---|---|",
            f"| student | `{info.student_model}` |",
            f"| teacher | `{info.teacher_model}` |",
            f"| boundary predictors | {predictors} |",
            f"| methods | {', '.join(info.methods) or 'tessy'} |",
            f"| rows | {info.n_rows} |",
            "",
            "Each row holds the response `text` (`<think>` thinking `</think>` answer, in the student's",
            "format), the `messages` conversation for SFT, and the token accounting of the synthesis",
            "(`n_tokens`, `n_tokens_teacher`, `n_tokens_student`, student tokenizer).",
            "",
            "```python",
            "from datasets import load_dataset",
            "",
            f"ds = {load}",
            "```",
            "",
            "## Quality",
            "",
            markdown_table(info.metrics) if info.metrics else "_not measured_",
            "",
            *evaluation_section(info.evaluation),
            "## Lineage",
            "",
            f"- release: `{info.release_id}`",
            f"- parent release: `{info.parent_release_id}`"
            if info.parent_release_id
            else "- parent release: none",
            f"- content hash (sha256 of the rows): `{info.content_hash}`",
            "",
            "## Manifest",
            "",
            "```json",
            json.dumps(public_manifest(info.manifest), indent=2, sort_keys=True, default=str),
            "```",
            "",
        ]
    )


def render_card(info: CardInfo) -> str:
    return str(DatasetCard(f"---\n{card_data(info).to_yaml()}\n---\n\n{_body(info)}"))


def public_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: manifest[k] for k in PUBLIC_MANIFEST if k in manifest}


def card_markdown(path: str | Path) -> str:
    """A card's markdown without its YAML metadata block, for viewers that would render that as text."""
    return DatasetCard.load(Path(path)).text


def write_card(folder: str | Path, info: CardInfo) -> Path:
    path = Path(folder) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_card(info), encoding="utf-8")
    return path
