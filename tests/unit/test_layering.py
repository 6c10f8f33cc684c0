"""The import graph keeps the layout honest: no cycle, no import against the layering, and task
modules imported by nothing but Celery (docs/layout.md)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from testkit.processes import PROJECT_ROOT

# What each room may import from the project, besides itself. Absent rooms import nothing of ours.
ALLOWED = {
    "models": {"settings"},
    "observability": {"domain"},
    "integrations": {"domain", "settings"},
    "queueing": {"models", "observability", "settings"},
    "pipeline": {"domain", "integrations", "models", "observability", "queueing", "settings"},
    "api": {"domain", "integrations", "models", "observability", "pipeline", "queueing", "settings"},
    "producers": {"api", "domain", "models", "observability", "queueing", "settings", "web"},
    # The /inbox pages: every action through api/ (its permissions, audit and validation).
    "web": {"api", "domain", "models", "pipeline", "settings"},
    "schedules": {"domain", "integrations", "models", "observability", "pipeline", "queueing", "settings"},
    "workers": {"domain", "integrations", "models", "observability", "pipeline", "queueing", "settings"},
    "testkit": {"settings"},
    "cli": {"api", "domain", "models", "pipeline", "queueing", "settings", "testkit"},
    "celeryconfig": {"queueing", "schedules", "settings"},
    "flowerconfig": {"settings"},
}
PRODUCTION = set(ALLOWED) | {"domain", "settings"}
# Modules whose import registers Celery tasks: only Celery (celeryconfig.imports) loads them.
TASK_ROOMS = ("workers.", "schedules.")
NOT_TASKS = {"schedules.beat"}


def modules() -> dict[str, Path]:
    found = {}
    for path in PROJECT_ROOT.rglob("*.py"):
        parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
        if parts[0].startswith(".") or parts[0] == "var":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        yield from (name for name in names if name in known)


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imports(path, known)) - {name} for name, path in known.items()}


def room(module: str) -> str:
    return module.split(".")[0]


def test_no_room_imports_against_the_layering():
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        if room(module) in PRODUCTION
        for target in targets
        if room(target) != room(module) and room(target) not in ALLOWED.get(room(module), set())
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_task_modules_are_imported_by_nothing_but_celery():
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        if room(module) in PRODUCTION and module != "workers"
        for target in targets
        if target.startswith(TASK_ROOMS) and target not in NOT_TASKS and room(target) != room(module)
    ]
    wrong += [
        f"{module} imports {target}"
        for module, targets in graph().items()
        if module.startswith(TASK_ROOMS)
        for target in targets
        if target.startswith(TASK_ROOMS) and target not in NOT_TASKS and target != "workers"
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_the_import_graph_has_no_cycle():
    edges, state, cycles = graph(), {}, []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)
