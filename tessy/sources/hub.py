"""Rows of a Hugging Face Hub dataset (`hf://org/name[/config]`), streamed split by split."""

from collections.abc import Iterable, Iterator

from tessy.sources.json_rows import JsonRows

HUB_PREFIX = "hf://"


def parse_hub_uri(uri: str) -> tuple[str, str | None]:
    """`hf://org/name/config` -> ("org/name", "config")."""
    parts = uri.removeprefix(HUB_PREFIX).strip("/").split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"expected hf://org/name[/config], got {uri!r}")
    return "/".join(parts[:2]), parts[2] if len(parts) == 3 else None


def iter_hub_splits(uri: str, batch_rows: int) -> Iterator[Iterator[JsonRows]]:
    """One stream of row chunks per split; each split is read like a file named `uri[split]`."""
    import datasets  # heavy, and only Hub sources need it

    repo, config = parse_hub_uri(uri)
    splits = datasets.load_dataset(repo, config, streaming=True)
    for split, rows in splits.items():
        yield _chunks(rows, f"{uri}[{split}]", batch_rows)


def _chunks(rows: Iterable[dict], where: str, batch_rows: int) -> Iterator[JsonRows]:
    chunk = JsonRows(where, "#")
    for index, row in enumerate(rows):
        chunk.rows.append(row)
        chunk.keys.append(index)
        chunk.n_read += 1
        if chunk.n_read >= batch_rows:
            yield chunk
            chunk = JsonRows(where, "#")
    if chunk.n_read:
        yield chunk
