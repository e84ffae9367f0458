"""The layers of docs/architecture.md hold: no module imports a layer above it, no two modules
import each other even through function-level imports, and `lint-imports` (run by
`./carehub.sh lint`) fails when someone breaks either."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("carehub", "gateway", "services", "firmware_sim", "app", "bench")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _contracts() -> dict[str, dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    modules = sorted(graph.modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in modules:
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [
            (start, sorted(graph.find_modules_directly_imported_by(start)))
        ]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.find_modules_directly_imported_by(nxt))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_another_that_imports_it_back() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """So the test above cannot pass by finding nothing."""
    graph = grimp.ImportGraph()
    for name in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(name)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.z")
    graph.add_import(importer="a.z", imported="a.x")
    graph.add_import(importer="a", imported="a.x")
    assert _cycles(graph) == [["a.x", "a.y", "a.z"]]


def test_architecture_page_lists_the_enforced_layers() -> None:
    layers = _contracts()["layers"]["layers"]
    assert isinstance(layers, list)
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    match = re.search(r"^Layers, top to bottom: (.+)$", page, re.M)
    assert match, "docs/architecture.md has no 'Layers, top to bottom:' line"
    named = [layer.strip(" `.") for layer in match[1].split(" > ")]
    assert named == [" | ".join(f"{p}" for p in layer.split(" | ")) for layer in layers]
    for layer in layers:
        for package in layer.split(" | "):
            assert (ROOT / package).is_dir(), package


def _copy_of_the_code(dest: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture(scope="module")
def code_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = _copy_of_the_code(tmp_path_factory.mktemp("tree"))
    clean = _lint_imports(tree)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    return tree


@pytest.mark.parametrize(
    ("module", "breach", "contract"),
    [
        # the kernel reaching up into the composition root
        ("carehub/clock.py", "from app import hub as _breach", "kernel <- gateway"),
        # the gateway reaching up into services, inside a function
        (
            "gateway/pipeline.py",
            "def _breach() -> None:\n    from services.alarms import model  # noqa: F401",
            "kernel <- gateway",
        ),
        # the simulator peeking into the gateway
        ("firmware_sim/world.py", "import gateway.pipeline as _breach", "foreign firmware"),
        # the rules engine talking to the web app directly
        ("services/rules/rules.py", "import services.web.i18n as _breach", "never directly"),
    ],
)
def test_lint_fails_on_a_breach(code_copy: Path, module: str, breach: str, contract: str) -> None:
    path = code_copy / module
    original = path.read_text(encoding="utf-8")
    try:
        path.write_text(f"{original}\n\n{breach}\n", encoding="utf-8")
        result = _lint_imports(code_copy)
    finally:
        path.write_text(original, encoding="utf-8")
    assert result.returncode != 0, result.stdout
    broken = result.stdout[result.stdout.index("Broken contracts") :]
    assert contract in broken, result.stdout
