"""Which files a source path stands for."""

from pathlib import Path

LINE_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
JSON_SUFFIXES = (".json", ".json.gz")
PARQUET_SUFFIXES = (".parquet",)
SUFFIXES = LINE_SUFFIXES + JSON_SUFFIXES + PARQUET_SUFFIXES


def is_supported(path: str | Path) -> bool:
    return str(path).lower().endswith(SUFFIXES)


def is_parquet(path: str) -> bool:
    return path.lower().endswith(PARQUET_SUFFIXES)


def list_files(path: str) -> list[str]:
    """The file itself, or every supported file under a directory (recursively, sorted)."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"source not found: {path}")
    if root.is_file():
        if not is_supported(root):
            raise ValueError(f"unsupported file type: {path} (expected one of {', '.join(SUFFIXES)})")
        return [path]
    files = [
        f
        for f in sorted(root.rglob("*"))
        if f.is_file() and is_supported(f) and not any(p.startswith(".") for p in f.relative_to(root).parts)
    ]
    if not files:
        raise ValueError(f"no {', '.join(SUFFIXES)} files under {path}")
    return [str(f) for f in files]
