"""Release names: they become folder names, Hub tags and the keys people type, so only a safe
alphabet is allowed (no `..`, no `/`, no leading dot or dash)."""

import re

from tessy.errors import ReleaseNameError

RELEASE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def checked_release_name(name: str) -> str:
    """`name` when it is a valid release name; ReleaseNameError saying the rule otherwise."""
    if not RELEASE_NAME.fullmatch(name) or ".." in name:
        raise ReleaseNameError(
            f"invalid release name {name!r}: lowercase letters, digits, '.', '_' and '-', starting with a"
            " letter or digit, no '..'"
        )
    return name
