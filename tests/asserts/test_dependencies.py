"""iotstore.asserts may import only the standard library, cryptography and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import iotstore.asserts

ALLOWED_THIRD_PARTY = {"cryptography"}


def _imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_asserts_imports_only_stdlib_and_cryptography() -> None:
    package = Path(iotstore.asserts.__file__).parent
    offenders: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        foreign = {
            name
            for name in _imported_top_levels(path)
            if name not in sys.stdlib_module_names and name not in ALLOWED_THIRD_PARTY
        }
        if foreign:
            offenders[str(path.relative_to(package))] = foreign
    assert offenders == {}
