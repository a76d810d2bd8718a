"""The package's layering: the commands sit on top, and no module under rainbow_ext (a command
neither) imports one."""

from __future__ import annotations

import ast
from pathlib import Path

import rainbow_ext

PACKAGE = Path(rainbow_ext.__file__).parent
COMMANDS = ("train", "tune", "ablate", "enjoy")


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code (``from a import b`` gives a and a.b)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_module_imports_a_command() -> None:
    commands = {f"rainbow_ext.{name}" for name in COMMANDS}
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(imported_modules(path) & commands) for path in PACKAGE.rglob("*.py")
    }
    assert not {path: found for path, found in offenders.items() if found}


def test_commands_are_thin() -> None:
    for name in COMMANDS:
        lines = (PACKAGE / f"{name}.py").read_text().count("\n")
        assert lines <= 120, f"rainbow_ext/{name}.py has {lines} lines: its logic belongs in rainbow_ext.zoo"


def test_the_import_reader_sees_nested_and_from_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\ndef f():\n    from rainbow_ext import train\n")
    assert {"os", "rainbow_ext", "rainbow_ext.train"} <= imported_modules(module)


def test_every_import_of_the_package_resolves() -> None:
    """Imports inside functions run only when called (``--track``, say): each must name a module that
    exists, so that moving a module cannot leave one behind."""
    import importlib.util

    missing = []
    for path in [*PACKAGE.rglob("*.py"), *PACKAGE.parent.joinpath("benchmarks").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.startswith("rainbow_ext") and importlib.util.find_spec(name) is None:
                    missing.append(f"{path.name}: {name}")
    assert not missing
