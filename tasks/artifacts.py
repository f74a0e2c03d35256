"""Prefect artifacts a person can read in the UI: tables with rounded numbers, links to the files a
run wrote (release folder, QA report) and to the Hub revision."""

from pathlib import Path
from typing import Any

from prefect.artifacts import create_link_artifact, create_table_artifact

from tessy.storage import Folder


def rounded(value: Any) -> Any:
    """Floats to 3 significant decimals, large ones (token counts, tok/s) to whole numbers."""
    if isinstance(value, float):
        return round(value) if abs(value) >= 100 else round(value, 3)
    return value


def table(key: str, rows: list[dict[str, Any]], description: str) -> None:
    """A table artifact; rows keep their column order (put what a reader compares first)."""
    create_table_artifact(
        [{k: rounded(v) for k, v in row.items()} for row in rows], key=key, description=description
    )


def file_link(key: str, where: str | Path, description: str) -> None:
    """A link to a file or folder: a storage URL (s3://...) as it is, a path on the worker's machine
    (or a file:// URL) as a file URI; the text is the URL or path itself."""
    folder = Folder(str(where))
    if not folder.local:
        create_link_artifact(folder.url, link_text=folder.url, key=key, description=description)
        return
    path = Path(folder.root).resolve()
    create_link_artifact(path.as_uri(), link_text=str(path), key=key, description=description)


def hub_link(key: str, repo_id: str, revision: str, description: str) -> None:
    create_link_artifact(
        f"https://huggingface.co/datasets/{repo_id}/tree/{revision}",
        link_text=f"{repo_id}@{revision[:12]}",
        key=key,
        description=description,
    )
