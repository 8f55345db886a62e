"""fpsm_core has no import cycle, and the preprocessing contract imports without torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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


def test_the_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]


def test_no_module_of_fpsm_core_takes_part_in_an_import_cycle() -> None:
    # Every import Python runs counts, lazy ones inside functions included: a cycle hidden in a
    # function is still a cycle a reader has to hold in their head. ``TYPE_CHECKING`` imports do
    # not: a module the library delegates to may name ``PatchLibrary`` in its annotations.
    graph = grimp.build_graph("fpsm_core", cache_dir=None, exclude_type_checking_imports=True)
    modules = {m for m in graph.modules if m.startswith("fpsm_core")}
    assert len(modules) > 30
    edges = {
        m: {x for x in graph.find_modules_directly_imported_by(m) if x in modules} for m in modules
    }
    assert _cycles(edges) == []


def test_preprocess_imports_without_torch() -> None:
    script = textwrap.dedent(
        """
        import sys
        import fpsm_core.preprocess as p
        assert p.Preprocessing().input_size == 512
        print("torch" in sys.modules)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "False"
