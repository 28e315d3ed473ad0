"""The house is one-way: no module imports a room above it, and no import circles.

Floors, bottom up: storage/ (SQL) → bot/ (the platform-neutral core) → handlers/ (platform
edges) and scheduler/ (time-driven work), side by side → deskmate/ (the process: CLI and
composition root). Every import counts, including those inside functions and under
TYPE_CHECKING: a deferred import is still an arrow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ("storage", "bot", "handlers", "scheduler", "deskmate")

# Which rooms each room may import from (itself included).
MAY_IMPORT = {
    "storage": {"storage"},
    "bot": {"bot", "storage"},
    "handlers": {"handlers", "bot", "storage"},
    "scheduler": {"scheduler", "bot", "storage"},
    "deskmate": {"deskmate", "handlers", "scheduler", "bot", "storage"},
}
# The platform wings of handlers/ are independent of each other.
WINGS = ("handlers.slack", "handlers.teams", "handlers.webchat")
# Third-party packages that belong to one place only.
ONLY_IN = {
    "asyncpg": ("storage",),
    "pgvector": ("storage",),
    "slack_sdk": ("handlers.slack",),
    "slack_bolt": ("handlers.slack",),
    "microsoft_agents": ("handlers.teams",),
    # The loop lives in scheduler/; bot/cron.py borrows only APScheduler's cron field arithmetic.
    "apscheduler": ("scheduler", "bot.cron"),
    # The default embedder's model, loaded in one place with downloads forbidden.
    "wordllama": ("bot.static_embeddings",),
    # Custom alert queries are parsed where they are checked, and nowhere else.
    "pglast": ("storage.alert_sql",),
}

Graph = dict[str, set[str]]


def modules(root: Path) -> dict[str, Path]:
    """Every module of the rooms, by dotted name."""
    found = {}
    for room in ROOMS:
        for path in sorted((root / room).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every dotted name the module imports, anywhere in its body."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(root: Path) -> tuple[Graph, dict[str, set[str]]]:
    """Module → the project modules it imports; module → the top-level packages it imports."""
    known = modules(root)
    graph: Graph = {name: set() for name in known}
    packages: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for imported in imported_names(name, path):
            packages[name].add(imported.partition(".")[0])
            target = imported
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph, packages


def room(module: str) -> str:
    return module.partition(".")[0]


def wing(module: str) -> str | None:
    return next((w for w in WINGS if module == w or module.startswith(w + ".")), None)


def violations(graph: Graph, packages: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if room(target) not in MAY_IMPORT[room(module)]:
                found.append(f"{module} imports {target}, a room above or beside it")
            if wing(module) and wing(target) and wing(module) != wing(target):
                found.append(f"{module} imports {target}, another platform's wing")
        for package, places in ONLY_IN.items():
            if package in packages[module] and not module.startswith(places):
                found.append(f"{module} imports {package}, which belongs in {', '.join(places)}")
    return found


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_a_room_above_it() -> None:
    graph, packages = import_graph(ROOT)
    assert len(graph) > 100  # the walk really saw the project
    assert violations(graph, packages) == []


def test_there_are_no_import_circles() -> None:
    graph, _ = import_graph(ROOT)
    assert cycles(graph) == []


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """A small house with every kind of fault, so the checks above cannot pass by being blind."""
    files = {
        "storage/__init__.py": "",
        "storage/users.py": "from bot.settings import Settings\nimport asyncpg\n",
        "bot/__init__.py": "",
        "bot/settings.py": "def f():\n    from handlers.slack import install\n",
        "bot/a.py": "from bot import b\nimport slack_sdk\n",
        "bot/b.py": "from . import a\n",
        "handlers/__init__.py": "",
        "handlers/slack/__init__.py": "from handlers.teams.cards import card\n",
        "handlers/teams/__init__.py": "",
        "handlers/teams/cards.py": "from scheduler.loop import Scheduler\n",
        "scheduler/__init__.py": "",
        "scheduler/loop.py": "from storage import users\n",
        "deskmate/__init__.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph, packages = import_graph(tmp_path)
    assert violations(graph, packages) == [
        "bot.a imports slack_sdk, which belongs in handlers.slack",
        "bot.settings imports handlers.slack, a room above or beside it",
        "handlers.slack imports handlers.teams.cards, another platform's wing",
        "handlers.teams.cards imports scheduler.loop, a room above or beside it",
        "storage.users imports bot.settings, a room above or beside it",
    ]
    assert sorted(cycles(graph)) == [
        ["bot.a", "bot.b"],
        [
            "bot.settings",
            "handlers.slack",
            "handlers.teams.cards",
            "scheduler.loop",
            "storage.users",
        ],
    ]
