"""The layering of docs/architecture.md, checked on the imports: flows -> tasks -> stages (and the
CLI) -> library + warehouse; the library never reaches up, the warehouse is storage only."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (function-local imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def reaches(module: str, forbidden: tuple[str, ...]) -> bool:
    return any(module == f or module.startswith(f + ".") for f in forbidden)


LIBRARY = [p for p in modules("tessy") if "stages" not in p.parts and p.name != "cli.py"]
MODEL_CODE = ("tessy.runtime", "tessy.engines", "torch", "transformers")
RULES = [
    # (files, what they must not import)
    (LIBRARY, ("prefect", "warehouse", "tasks", "flows", "tessy.stages", "tessy.cli")),
    (modules("tessy/stages"), ("prefect", "tasks", "flows", "tessy.cli")),
    (modules("warehouse"), ("prefect", "tasks", "flows", "tessy.stages", *MODEL_CODE)),
    (modules("tasks"), ("flows",)),
]


@pytest.mark.parametrize("files, forbidden", RULES, ids=["library", "stages", "warehouse", "tasks"])
def test_imports_point_down(files, forbidden):
    wrong = {
        f"{path.relative_to(REPO)} imports {module}"
        for path in files
        for module in imports(path)
        if reaches(module, forbidden)
    }
    assert not wrong, sorted(wrong)


def test_the_warehouse_loads_no_model_code():
    """Not even through the library modules it uses: importing every warehouse module pulls in no
    engine, runtime, torch or transformers."""
    names = [".".join(p.relative_to(REPO).with_suffix("").parts) for p in modules("warehouse")]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        f"bad = {(*MODEL_CODE, 'prefect')!r}\n"
        "print(sorted(m for m in sys.modules if any(m == b or m.startswith(b + '.') for b in bad)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
