"""The layout's rules, checked on the source: no import circle (imports inside functions count),
family names written once, one owner of the run-folder files, figures only in plots.py, a server
that never imports torch.

Each rule reads the source with `ast`, so a violation names the file and line.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import textcls
from textcls.families import FAMILIES
from textcls.models.base import BALANCED_SAMPLER, DISTRIBUTED, EXPLAIN, EXPORT_ONNX, LONG_TEXT, MULTI_LABEL, PREDICT, Classifier, family_class

PACKAGE = Path(textcls.__file__).parent
MODULES = {
    ".".join(("textcls", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__"): path
    for path in sorted(PACKAGE.rglob("*.py"))
}


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported_modules(module: str, path: Path) -> list[tuple[str, int]]:
    """textcls modules imported anywhere in `path` (functions included, `if TYPE_CHECKING:` blocks not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if _is_type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.append((base, node.lineno))
            # `from textcls import plots` imports the module textcls.plots
            found.extend((f"{base}.{alias.name}", node.lineno) for alias in node.names if f"{base}.{alias.name}" in MODULES)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return [(name, line) for name, line in found if name in MODULES and name != module]


def _import_graph() -> dict[str, set[str]]:
    graph = {module: {name for name, _ in _imported_modules(module, path)} for module, path in MODULES.items()}
    # Importing a submodule runs its packages' __init__ first; those edges are Python's, not ours.
    return {module: {t for t in targets if not module.startswith(t + ".")} for module, targets in graph.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return groups


def _string_literals(path: Path) -> list[tuple[str, int]]:
    """String constants of a module with their lines, docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.value, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_the_checker_sees_imports_inside_functions_and_finds_a_planted_circle(tmp_path):
    # The rule below must be able to fail: a circle closed by an import inside a function is found.
    graph = _import_graph()
    assert "textcls.runfolder" in graph["textcls.runs"]
    planted = {**graph, "textcls.runfolder": graph["textcls.runfolder"] | {"textcls.runs"}}
    assert any({"textcls.runs", "textcls.runfolder"} <= set(group) for group in _cycles(planted))
    # `import` statements inside a function body are read too.
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from textcls import plots\n    import textcls.report\n")
    assert {name for name, _ in _imported_modules("textcls.probe", source)} >= {"textcls.plots", "textcls.report"}


def test_no_import_circles_counting_imports_inside_functions():
    assert _cycles(_import_graph()) == []


@pytest.mark.parametrize(
    "low, high",
    [
        ("textcls.runfolder", {"textcls.runs", "textcls.report", "textcls.cli", "textcls.serving", "textcls.models"}),
        ("textcls.batching", {"textcls.models", "textcls.runs", "textcls.onnx_backend"}),
        ("textcls.plots", {"textcls.explain", "textcls.report", "textcls.runs", "textcls.models"}),
        ("textcls.report", {"textcls.runs", "textcls.models", "textcls.explain", "textcls.cli"}),
        ("textcls.explain", {"textcls.plots", "textcls.runs", "textcls.models"}),
        ("textcls.config", {"textcls.runs", "textcls.models", "textcls.data"}),
        ("textcls.families", {"textcls.config", "textcls.models", "textcls.runs"}),
        ("textcls.environment", {"textcls.models", "textcls.runs"}),
    ],
)
def test_low_modules_never_import_high_ones(low, high):
    imported = {name for name, _ in _imported_modules(low, MODULES[low])}
    reached = {name for name in imported if any(name == h or name.startswith(h + ".") for h in high)}
    assert not reached, f"{low} imports {sorted(reached)}"


def test_family_names_are_written_once_outside_the_models():
    # families.py lists them; each family's own module in models/ names itself. Nothing else may
    # spell a family name in code (messages are built from the registry or the capabilities).
    allowed = {PACKAGE / "families.py"} | set((PACKAGE / "models").glob("*.py"))
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line}: {value!r}"
        for path in MODULES.values() if path not in allowed
        for value, line in _string_literals(path) if value in FAMILIES
    ]
    assert offenders == []
    # ... and within models/, only in the module that implements the family.
    for name, spec in FAMILIES.items():
        owner = PACKAGE / Path(*spec.target.split(":")[0].split(".")[1:]).with_suffix(".py")
        elsewhere = [
            f"{path.name}:{line}" for path in (PACKAGE / "models").glob("*.py") if path != owner
            for value, line in _string_literals(path) if value == name
        ]
        assert elsewhere == [], f"family {name!r} is named outside {owner.name}"


def test_only_the_run_folder_module_names_its_files():
    for file_name in ("textcls.json", "metrics.json"):
        offenders = [
            f"{path.relative_to(PACKAGE)}:{line}"
            for path in MODULES.values() if path.name != "runfolder.py"
            for value, line in _string_literals(path) if file_name in value
        ]
        assert offenders == [], f"{file_name} is named outside runfolder.py"


@pytest.mark.parametrize("module", ["textcls.report", "textcls.compare", "textcls.runs", "textcls.explain", "textcls.cli"])
def test_figures_are_drawn_only_in_plots(module):
    imported = {name for name, _ in _imported_modules(module, MODULES[module])}
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    raw = [
        node.lineno for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        and any("matplotlib" in (alias.name or "") for alias in node.names) | ("matplotlib" in (getattr(node, "module", "") or ""))
    ]
    assert raw == [], f"{module} imports matplotlib on lines {raw}"
    assert "matplotlib" not in " ".join(imported)


def test_serving_never_imports_torch():
    for module, path in MODULES.items():
        if module.startswith("textcls.serving"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = [
                alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
            ] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
            assert not [n for n in names if n == "torch" or n.startswith("torch.")], module
    # Building the app and shaping predictions load no torch at all (a fresh interpreter).
    probe = "import sys, textcls.serving.app, textcls.predictions; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "False"


def test_every_registered_family_declares_what_it_can_do():
    for name in FAMILIES:
        cls = family_class(name)
        assert issubclass(cls, Classifier) and cls.family == name
        assert PREDICT in cls.capabilities
        assert cls.capabilities <= {PREDICT, EXPLAIN, EXPORT_ONNX, BALANCED_SAMPLER, LONG_TEXT, MULTI_LABEL, DISTRIBUTED}
        # explain is implemented exactly by the families that declare it
        assert (EXPLAIN in cls.capabilities) == ("explain" in vars(cls) or any(
            "explain" in vars(base) for base in cls.__mro__[1:] if base.__module__.startswith("textcls.models.")
            and base.__name__ not in {"Predictor", "Classifier"}
        ))


def _readme_layers() -> dict[str, int]:
    """Module -> row of the README's "How the code is organised" table (lowest layer first)."""
    readme = (PACKAGE.parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("### How the code is organised", 1)[1].split("\n\n", 2)[2].split("\n\n", 1)[0]
    layers: dict[str, int] = {}
    for row_number, row in enumerate(line for line in table.splitlines()[2:] if line.startswith("|")):
        names = [part.split("`")[0] for part in row.split("|")[1].split("`")[1::2]]
        folder = names[0].rsplit("/", 1)[0] + "/" if "/" in names[0].rstrip("/") else ""
        for name in names:
            path = name if "/" in name else folder + name
            module = "textcls." + path.removesuffix(".py").rstrip("/").replace("/", ".")
            layers[module] = row_number
    return layers


def test_the_readme_layer_table_lists_every_module_in_an_order_the_imports_keep():
    layers = _readme_layers()
    modules = {m for m in MODULES if m not in ("textcls", "textcls.__main__", "textcls.models")}
    # serving/ is one row: its modules sit on it together
    rank = {m: layers.get(m, layers.get("textcls.serving") if m.startswith("textcls.serving") else None) for m in modules}
    assert [m for m, r in rank.items() if r is None] == [], "modules missing from the README table"
    assert len(set(layers.values())) > 10  # the parse found the table's rows
    upward = [
        f"{module} imports {target}"
        for module, targets in _import_graph().items() if module in rank
        for target in targets if target in rank and rank[target] > rank[module]
    ]
    assert upward == []
