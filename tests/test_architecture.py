"""The floors of the package import downward only (docs/architecture.md): the memory op depends
on nothing of ours above it, the data package on nothing of titans_seq but the bottom floor's
parameter rules, a task on no other task, and nothing below the estimators on an estimator."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("titans_seq", "datamodules")

# floor of each module, by the longest dotted prefix that names it
FLOORS = {
    "titans_seq.memory": 0,
    "titans_seq.attention": 1,
    "titans_seq.blocks": 2,
    "titans_seq.training": 3, "titans_seq.optim": 3, "titans_seq.persistence": 3,
    "titans_seq.devices": 3,
    "titans_seq.forecasting": 3, "titans_seq.classification": 3, "titans_seq.anomaly": 3,
    "titans_seq.metrics": 3,
    "titans_seq.base": 4, "titans_seq.baselines": 4, "titans_seq.model_selection": 4,
    "titans_seq.forecasting.estimator": 4, "titans_seq.classification.estimator": 4,
    "titans_seq.anomaly.detector": 4, "titans_seq.anomaly.stream_detector": 4,
    "titans_seq.plotting": 5, "titans_seq.demo": 5, "titans_seq.cli": 5, "titans_seq": 5,
    "titans_seq.writers": 5,
}
TASKS = ("titans_seq.forecasting", "titans_seq.classification", "titans_seq.anomaly")
# the one thing of titans_seq the data package may use
DATA_MAY_IMPORT = ("titans_seq.memory.checks",)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(name: str, source: str, is_package: bool) -> list[tuple[str, int]]:
    """Every module of ours that module ``name`` (its ``source``) imports, relative imports
    resolved, with its line."""
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.append((target, node.lineno))
            # "from . import history" imports a module too
            found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
    return [(target, line) for target, line in found if target.split(".")[0] in OURS]


def floor(name: str) -> int | None:
    for prefix in sorted(FLOORS, key=len, reverse=True):
        if name == prefix or name.startswith(prefix + "."):
            return FLOORS[prefix]
    return None


def task(name: str) -> str | None:
    return next((t for t in TASKS if name == t or name.startswith(t + ".")), None)


def violations(name: str, source: str, is_package: bool = False) -> list[str]:
    """The imports of module ``name`` (its ``source``) that break the floors, in words."""
    found, said = [], set()
    for target, line in imports(name, source, is_package):
        if line in said or not _is_module(target) or \
                (is_package and target.startswith(name + ".")):
            continue  # said; a name, not a module; a package re-exporting its own members
        problem = _problem(name, target)
        if problem:
            found.append(f"{name}:{line} imports {target} ({problem})")
            said.add(line)
    return found


def _problem(name: str, target: str) -> str | None:
    if name.startswith("datamodules"):
        if target.startswith("titans_seq") and not target.startswith(DATA_MAY_IMPORT):
            return "the data package may use only the parameter rules"
        return None
    if target.startswith("datamodules"):
        return "below the tasks, nothing reads the data package" if floor(name) < 3 else None
    if floor(target) > floor(name):
        return f"floor {floor(name)} imports floor {floor(target)}"
    if task(name) and task(target) and task(name) != task(target):
        return "one task imports another"
    return None


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


SOURCES = sorted(p for package in OURS for p in (ROOT / package).rglob("*.py"))


def test_every_module_has_a_floor():
    assert [module_name(p) for p in SOURCES if p.parts[-2] != "csrc"
            and module_name(p).startswith("titans_seq") and floor(module_name(p)) is None] == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_downward_only(path):
    assert violations(module_name(path), path.read_text(), path.name == "__init__.py") == []


def test_the_memory_op_imports_only_torch_and_itself():
    # besides the standard library: torch, ninja, which builds the native kernel, and triton,
    # which the optional Triton kernel imports on first use (never with the package)
    allowed = {"torch", "ninja", "triton", "numbers", "math", "typing", "dataclasses", "__future__",
               "contextlib", "hashlib", "logging", "os", "platform", "shutil", "threading", "warnings",
               "pathlib", "functools", "itertools", "abc", "collections"}
    for path in (ROOT / "titans_seq" / "memory").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                roots = [node.module.split(".")[0]]
            else:
                continue
            assert set(roots) <= allowed, f"{path.name}:{node.lineno} imports {roots}"


def test_the_check_catches_upward_and_sideways_imports():
    """The rule itself can fail: a memory module importing the data package or a task, a
    network importing its estimator or another task, the data package importing a task."""
    assert len(violations("titans_seq.memory.probe", "from datamodules.checks import integer\n"
                          "from ..forecasting import TitansForecaster\n")) == 2
    assert len(violations("titans_seq.forecasting.probe",
                          "from .estimator import TitansForecaster\n"
                          "from ..classification import kmers\n")) == 2
    assert len(violations("titans_seq.blocks.probe", "import datamodules.timeseries\n")) == 1
    assert len(violations("datamodules.probe", "from titans_seq.blocks import TitansEncoder\n"
                          "from titans_seq.memory.checks import integer\n")) == 1
    assert violations("titans_seq.forecasting.probe", "from ..blocks import EncoderConfig\n"
                      "from . import history\n") == []
