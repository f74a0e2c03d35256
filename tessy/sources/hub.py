"""Rows of a Hugging Face Hub dataset (`hf://org/name[/config][@revision]`), streamed split by split,
at one revision: the one named, or the dataset's current commit, resolved once and recorded in every
row's locator (`hf://org/name@<sha>[split]#i`), so a night reads one consistent version and the
warehouse says which."""

from collections.abc import Iterable, Iterator

from tessy.sources.json_rows import JsonRows

HUB_PREFIX = "hf://"


def parse_hub_uri(uri: str) -> tuple[str, str | None, str | None]:
    """`hf://org/name/config@rev` -> ("org/name", "config", "rev")."""
    body, _, revision = uri.removeprefix(HUB_PREFIX).strip("/").partition("@")
    parts = body.strip("/").split("/")
    if len(parts) not in (2, 3) or not all(parts) or (revision == "" and "@" in uri):
        raise ValueError(f"expected hf://org/name[/config][@revision], got {uri!r}")
    return "/".join(parts[:2]), parts[2] if len(parts) == 3 else None, revision or None


def iter_hub_splits(uri: str, batch_rows: int) -> Iterator[Iterator[JsonRows]]:
    """One stream of row chunks per split; each split is read like a file named `uri@revision[split]`."""
    import datasets  # heavy, and only Hub sources need it
    from huggingface_hub import HfApi

    repo, config, revision = parse_hub_uri(uri)
    revision = revision or HfApi().dataset_info(repo).sha
    base = uri.partition("@")[0]
    splits = datasets.load_dataset(repo, config, streaming=True, revision=revision)
    for split, rows in splits.items():
        yield _chunks(rows, f"{base}@{revision}[{split}]", batch_rows)


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
