"""The folders are the architecture, and this test keeps them so.

The stages of the pipeline, bottom to top; a module may import the foundation, its own
package, and the packages below its own, never one above. The edges (cli, web) import the
library; nothing in the library imports an edge. Inside a package no two modules import
each other, directly or around a circle. Imports inside functions count as well."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

PACKAGE = ROOT / "newsletter"
FOUNDATION = {
    "errors",
    "models",
    "settings",
    "language",
    "reasons",
}  # importable by all, importing only each other
LAYERS = [  # bottom to top
    "store",
    "publications",  # the desk's newsletters: each stage's settings are one newsletter's
    "transport",
    "curation",
    "readers",
    "compose",
    "delivery",
    "bounces",
    "schedule",
    "root",  # the composition root and what composes the whole: app, demo, editors
    "edges",  # cli, web, __main__
]
EDGES = {"cli", "web", "__main__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    """The layer of newsletter.X[.Y]: its package, the foundation, the root or an edge."""
    head = module.split(".")[1] if "." in module else ""
    if head in FOUNDATION:
        return "foundation"
    if head in EDGES:
        return "edges"
    if head in LAYERS:
        return head
    return "root"


def imports_of(path: Path) -> set[str]:
    """Every newsletter module the file imports, resolved to the module (a name imported
    from a package that is a module of it counts as that module)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("newsletter")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("newsletter"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                is_module = (ROOT / (sub.replace(".", "/") + ".py")).exists() or (
                    ROOT / sub.replace(".", "/") / "__init__.py"
                ).exists()
                found.add(sub if is_module else target)
    return {m for m in found if m != here}


def library_files() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts]


def the_graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in library_files()}


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a layer above the importer's own (or, for the foundation, of any
    stage at all)."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    wrong = []
    for here, targets in graph.items():
        mine = layer(here)
        for target in targets:
            theirs = layer(target)
            if target == "newsletter":
                continue
            if mine == "foundation":
                ok = theirs == "foundation"
            else:
                ok = theirs in ("foundation", mine) or rank[theirs] < rank[mine]
            if not ok:
                wrong.append(f"{here} ({mine}) imports {target} ({theirs})")
    return sorted(wrong)


def circles(graph: dict[str, set[str]]) -> list[str]:
    """Every circle of imports between the modules of one package."""
    inside = {
        here: {t for t in targets if t.rpartition(".")[0] == here.rpartition(".")[0]}
        for here, targets in graph.items()
    }
    found = set()

    def visit(node: str, trail: list[str]) -> None:
        for nxt in sorted(inside.get(node, ())):
            if nxt in trail:
                found.add(" -> ".join([*trail[trail.index(nxt) :], nxt]))
            elif len(trail) < 12:
                visit(nxt, [*trail, nxt])

    for start in sorted(inside):
        visit(start, [start])
    return sorted(found)


def test_no_module_imports_a_layer_above_its_own() -> None:
    graph = the_graph()
    assert len(graph) > 60 and sum(len(t) for t in graph.values()) > 200  # it read them all
    assert upward(graph) == [], "\n".join(upward(graph))


def test_no_circle_of_imports_inside_a_package() -> None:
    assert circles(the_graph()) == []


def test_the_rules_name_an_upward_import_and_a_circle() -> None:
    made_up = {
        "newsletter.store.tables": {"newsletter.delivery.send", "newsletter.errors"},
        "newsletter.readers.access": {"newsletter.web.desk"},
        "newsletter.settings": {"newsletter.transport.pool"},
        "newsletter.transport.pool": {"newsletter.transport.smtp"},
        "newsletter.transport.smtp": {"newsletter.transport.pool"},
        "newsletter.web.desk": {"newsletter.app", "newsletter.curation.issues"},
    }
    assert upward(made_up) == [
        "newsletter.readers.access (readers) imports newsletter.web.desk (edges)",
        "newsletter.settings (foundation) imports newsletter.transport.pool (transport)",
        "newsletter.store.tables (store) imports newsletter.delivery.send (delivery)",
    ]
    assert circles(made_up) == [
        "newsletter.transport.pool -> newsletter.transport.smtp -> newsletter.transport.pool",
        "newsletter.transport.smtp -> newsletter.transport.pool -> newsletter.transport.smtp",
    ]


def test_every_package_opens_with_a_docstring_saying_what_it_owns() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        if "migrations" in init.parts:
            continue
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc) > 60, init


def test_the_web_app_runs_no_query_of_its_own() -> None:
    """The desk reads through the same library functions as the command line (an issue
    for a send day, a send's status, the readers' list), so the two cannot disagree: no
    module of web/ imports SQLAlchemy or the tables."""
    graph = the_graph()
    web = {m: t for m, t in graph.items() if m.startswith("newsletter.web")}
    assert len(web) >= 5
    assert {m: sorted(t & {"newsletter.store.tables"}) for m, t in web.items() if
            "newsletter.store.tables" in t} == {}  # fmt: skip
    for path in (PACKAGE / "web").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        used = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names} | {n.module.split(".")[0] for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and n.module}  # fmt: skip
        assert "sqlalchemy" not in used, path
