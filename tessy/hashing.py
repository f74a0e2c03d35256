"""Content hashes: every id in the project is a sha256 of canonical content, never Python `hash()`."""

import hashlib
import json
from typing import Any


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_json(config: Any) -> str:
    """The JSON text `config_hash` hashes: sorted keys, no spaces."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config: Any) -> str:
    """Hash of a JSON-able config, independent of key order."""
    return sha256_text(canonical_json(config))
