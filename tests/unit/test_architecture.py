"""The layout's rules, checked on the source: packages in layers that import only downwards, no
import circle (imports inside functions count), family names written once, one owner of the
run-folder files, figures only in `reporting/plots.py`, no torch below `training/` or in the server.

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
from textcls.models.base import CAPABILITIES, EXPLAIN, PREDICT, Classifier, family_class

PACKAGE = Path(textcls.__file__).parent
MODULES = {
    ".".join(("textcls", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__"): path
    for path in sorted(PACKAGE.rglob("*.py"))
}
# Parsed once, when the module is collected: CPython 3.11's ast.parse can raise "AST constructor recursion
# depth mismatch" once other tests in the same process have changed the interpreter's recursion state.
TREES = {path: ast.parse(path.read_text(encoding="utf-8")) for path in MODULES.values()}


def _tree(path: Path) -> ast.Module:
    return TREES[path] if path in TREES else ast.parse(path.read_text(encoding="utf-8"))


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported_modules(module: str, path: Path) -> list[tuple[str, int]]:
    """textcls modules imported anywhere in `path` (functions included, `if TYPE_CHECKING:` blocks not)."""
    tree = _tree(path)
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
            # `from textcls import plots` imports the module textcls.reporting.plots
            found.extend(
                (f"{base}.{alias.name}", node.lineno) for alias in node.names if f"{base}.{alias.name}" in MODULES
            )
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
    tree = _tree(path)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.value, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


# The layers, lowest first. A module may import its own layer and the ones before it, never a later
# one. The foundation is one layer of single modules; every other layer is a package.
FOUNDATION = (
    "textcls.errors",
    "textcls.files",
    "textcls.machine",
    "textcls.families",
    "textcls.config",
    "textcls.runfolder",
)
LAYERS = [
    FOUNDATION,
    ("textcls.data",),
    ("textcls.reporting",),
    ("textcls.training",),
    ("textcls.models",),
    ("textcls.inference",),
    ("textcls.runs",),
    ("textcls.seq2seq",),
    ("textcls.cluster",),
    ("textcls.serving",),
    ("textcls.cli",),
]
TOP = ("textcls", "textcls.__main__")  # the public API and `python -m textcls` sit above every layer
# Libraries a layer never imports: the layers below training/ read, check and draw without torch.
FORBIDDEN = {
    FOUNDATION: ("torch", "transformers", "tokenizers", "matplotlib"),
    ("textcls.data",): ("torch", "transformers", "tokenizers", "matplotlib"),
    ("textcls.reporting",): ("torch", "transformers", "tokenizers"),
    ("textcls.serving",): ("torch", "transformers"),
}


def _layer(module: str) -> int | None:
    for number, members in enumerate(LAYERS):
        if any(module == member or module.startswith(member + ".") for member in members):
            return number
    return None


def _third_party_imports(path: Path) -> list[tuple[str, int]]:
    tree = _tree(path)
    found = []
    for node in ast.walk(tree):
        if _is_type_checking_block(node):
            continue
        if isinstance(node, ast.Import):
            found.extend((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module.split(".")[0], node.lineno))
    return found


def test_the_checker_sees_imports_inside_functions_and_finds_a_planted_circle(tmp_path):
    # The rules below must be able to fail: a circle closed by an import inside a function is found.
    graph = _import_graph()
    assert "textcls.runfolder" in graph["textcls.runs.api"]
    planted = {**graph, "textcls.runfolder": graph["textcls.runfolder"] | {"textcls.runs.api"}}
    assert any({"textcls.runs.api", "textcls.runfolder"} <= set(group) for group in _cycles(planted))
    # `import` statements inside a function body are read too.
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from textcls.reporting import plots\n    import textcls.reporting.html\n")
    assert {name for name, _ in _imported_modules("textcls.probe", source)} >= {
        "textcls.reporting.plots",
        "textcls.reporting.html",
    }


def test_no_import_circles_counting_imports_inside_functions():
    assert _cycles(_import_graph()) == []


def test_every_module_sits_in_one_layer():
    assert [m for m in MODULES if m not in TOP and _layer(m) is None] == []


def test_layers_import_only_downwards():
    upward = [
        f"{MODULES[module].relative_to(PACKAGE)}:{line} imports {target}"
        for module, path in MODULES.items()
        if module not in TOP
        for target, line in _imported_modules(module, path)
        if target not in TOP and _layer(target) > _layer(module)
    ]
    assert upward == []
    assert [
        m
        for m, targets in _import_graph().items()
        for t in targets
        if t.startswith("textcls.cli") and not (m.startswith("textcls.cli") or m in TOP)
    ] == []


def test_the_layer_rule_can_fail():
    # A planted upward import is reported: data/ reaching up into runs/.
    assert _layer("textcls.runs.api") > _layer("textcls.data.loading")
    assert _layer("textcls.machine") == 0 and _layer("textcls.cli.main") == len(LAYERS) - 1


@pytest.mark.parametrize("layer", list(FORBIDDEN), ids=lambda layer: layer[0])
def test_low_layers_never_import_heavy_libraries(layer):
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line}: {name}"
        for module, path in MODULES.items()
        if _layer(module) == LAYERS.index(layer)
        for name, line in _third_party_imports(path)
        if name in FORBIDDEN[layer]
    ]
    assert offenders == []


def test_every_package_says_what_it_owns():
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(_tree(init))
        assert doc and len(doc) > 60, f"{init.relative_to(PACKAGE)} has no docstring saying what the package owns"


def test_family_names_are_written_once_outside_the_models():
    # families.py lists them; each family's own module in models/ names itself. Nothing else may
    # spell a family name in code (messages are built from the registry or the capabilities).
    allowed = {PACKAGE / "families.py"} | set((PACKAGE / "models").glob("*.py"))
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line}: {value!r}"
        for path in MODULES.values()
        if path not in allowed
        for value, line in _string_literals(path)
        if value in FAMILIES
    ]
    assert offenders == []
    # ... and within models/, only in the module that implements the family.
    for name, spec in FAMILIES.items():
        owner = PACKAGE / Path(*spec.target.split(":")[0].split(".")[1:]).with_suffix(".py")
        elsewhere = [
            f"{path.name}:{line}"
            for path in (PACKAGE / "models").glob("*.py")
            if path != owner
            for value, line in _string_literals(path)
            if value == name
        ]
        assert elsewhere == [], f"family {name!r} is named outside {owner.name}"


def test_only_the_run_folder_module_names_its_files():
    for file_name in ("textcls.json", "metrics.json"):
        offenders = [
            f"{path.relative_to(PACKAGE)}:{line}"
            for path in MODULES.values()
            if path.name != "runfolder.py"
            for value, line in _string_literals(path)
            if file_name in value
        ]
        assert offenders == [], f"{file_name} is named outside runfolder.py"


def test_figures_are_drawn_only_in_plots():
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for module, path in MODULES.items()
        if module != "textcls.reporting.plots"
        for name, line in _third_party_imports(path)
        if name == "matplotlib"
    ]
    assert offenders == []


def test_serving_never_imports_torch():
    # Building the app and shaping predictions load no torch at all (a fresh interpreter).
    probe = "import sys, textcls.serving.app, textcls.inference.predictions; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "False"


def test_every_registered_family_declares_what_it_can_do():
    for name in FAMILIES:
        cls = family_class(name)
        assert issubclass(cls, Classifier) and cls.family == name
        assert PREDICT in cls.capabilities
        assert cls.capabilities <= CAPABILITIES
        # explain is implemented exactly by the families that declare it
        assert (EXPLAIN in cls.capabilities) == (
            "explain" in vars(cls)
            or any(
                "explain" in vars(base)
                for base in cls.__mro__[1:]
                if base.__module__.startswith("textcls.models.") and base.__name__ not in {"Predictor", "Classifier"}
            )
        )


def test_the_architecture_page_lists_the_layers_in_order():
    page = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    positions = []
    for layer in LAYERS:
        for member in layer:
            name = member.removeprefix("textcls.").replace(".", "/")
            shown = f"`{name}/`" if member not in FOUNDATION else f"`{name}`"
            assert shown in page, f"docs/architecture.md does not name {shown}"
        first = LAYERS[0][0] if layer is FOUNDATION else layer[0]
        name = first.removeprefix("textcls.")
        positions.append(page.index(f"`{name}/`" if layer is not FOUNDATION else f"`{name}`"))
    assert positions == sorted(positions), "docs/architecture.md lists the layers out of order"
