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
    for path in [*PACKAGE.rglob("*.py"), *PACKAGE.parent.joinpath("benchmarks").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.startswith("rainbow_ext") and importlib.util.find_spec(name) is None:
                    missing.append(f"{path.name}: {name}")
    assert not missing


def module_graph() -> dict[str, set[str]]:
    """rainbow_ext's modules -> the rainbow_ext modules each imports (at any depth of its code), leaving
    out a module's own packages (importing a submodule imports its package first, whatever the code says)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        imported = set()
        for module in imported_modules(path):
            pieces = module.split(".")
            known = [".".join(pieces[:k]) for k in range(len(pieces), 0, -1) if ".".join(pieces[:k]) in modules]
            if known:
                imported.add(known[0])
        graph[name] = {m for m in imported if m != name and not name.startswith(m + ".")}
    return graph


def test_no_import_cycle_between_the_packages_modules() -> None:
    graph = module_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                cycles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles


def test_envs_and_the_algorithm_do_not_import_the_experiment_layer() -> None:
    """rainbow_ext.zoo sits on the library (envs, networks, buffers, the algorithm), not under it."""
    graph = module_graph()
    below = [m for m in graph if not m.startswith("rainbow_ext.zoo") and m.split(".")[-1] not in COMMANDS]
    offenders = {m: sorted(i for i in graph[m] if i.startswith("rainbow_ext.zoo")) for m in below}
    assert not {m: found for m, found in offenders.items() if found}


def test_importing_the_package_loads_nothing_and_leaves_ctrl_c_alone() -> None:
    """``import rainbow_ext`` has no side effects: no torch, no SB3, Python's own SIGINT handler; its names
    load on first use."""
    import subprocess
    import sys

    code = (
        "import signal, sys, rainbow_ext\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'stable_baselines3', 'numpy'})\n"
        "print(heavy, signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n"
        "from rainbow_ext import Rainbow, DataEfficientTrunk\n"
        "print(Rainbow.__module__, DataEfficientTrunk.__module__, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[] True"
    assert out[1] == "rainbow_ext.rainbow rainbow_ext.layers True"
    assert set(rainbow_ext.__all__) == {*rainbow_ext._EXPORTS, "__version__"}


def test_tests_are_laid_out_like_the_package() -> None:
    """tests/<sub>/ for each subpackage rainbow_ext/<sub>/ (tests/helpers/ holds what tests share), imported
    as packages: no test edits sys.path."""
    tests = Path(__file__).parent
    for folder in (p for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))):
        assert (folder / "__init__.py").is_file(), folder
        assert folder.name == "helpers" or (PACKAGE / folder.name / "__init__.py").is_file(), folder
    edits = [p.name for p in tests.rglob("*.py") if "sys.path.insert" in p.read_text() and p != Path(__file__)]
    assert not edits


def test_every_script_the_docs_quote_exists() -> None:
    """Each ``benchmarks/...``, ``tests/...``, ``zoo_configs/...`` or ``tuning/...`` file that README.md,
    BENCHMARKS.md, CHANGELOG.md, docs/ or benchmarks/README.md names is there (the commands they quote
    still run what they say)."""
    import re

    repository = PACKAGE.parent
    documents = [repository / name for name in ("README.md", "BENCHMARKS.md", "CHANGELOG.md")]
    documents += [*repository.joinpath("docs").glob("*.md"), repository / "benchmarks" / "README.md"]
    quoted = re.compile(r"(?<![\w./-])((?:benchmarks|tests|zoo_configs|tuning)/[\w./-]+\.(?:py|sh|yml))")
    missing = set()
    for document in documents:
        for path in quoted.findall(document.read_text()):
            base = repository / "benchmarks" if document.parent.name == "benchmarks" else repository
            if not (repository / path).exists() and not (base / path).exists():
                missing.add(f"{document.name}: {path}")
    assert not missing
    # benchmarks/README.md names its scripts relative to benchmarks/: every script is listed there
    index = (repository / "benchmarks" / "README.md").read_text()
    benchmarks = repository / "benchmarks"
    scripts = {p.relative_to(benchmarks).as_posix() for p in benchmarks.glob("*/*")}
    assert {s for s in scripts if s.endswith((".py", ".sh")) and f"`{s}`" not in index} == set()
