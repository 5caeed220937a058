"""The code-shape goals of docs/architecture.md, measured: modules over 300 lines (C
included), functions over 60 lines, comparisons of an algorithm or network name with a
string outside their registries, imports from a lower layer to a higher one, and import
circles. tests/test_safety.py asserts the last two from the functions here.

    .venv/bin/python scripts/shape.py        # prints one JSON object
"""
import ast
import json
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "aevb"
NAMES = {"aevb", "wake-sleep", "mcem", "full-vb", "mlp", "conv"}
# where the names are defined: the registries and the objects they name
REGISTRIES = {"algorithms/__init__.py", "networks/__init__.py", "config.py",
              "training/reproduce.py"}
# The layers of docs/architecture.md, bottom first: a module imports from its own layer or
# those below. A module is in the layer of the longest name here that it starts with.
LAYERS = [
    ("foundations", ["aevb", "aevb.errors", "aevb.fields", "aevb.rng", "aevb.files"]),
    ("data", ["aevb.data"]),
    ("the paper's maths", ["aevb.maths"]),
    ("models", ["aevb.priors", "aevb.networks", "aevb.hierarchy", "aevb.full_vb", "aevb.labelled",
                "aevb.model"]),
    ("compute", ["aevb.compute", "aevb.native"]),
    ("evaluation", ["aevb.evaluation"]),
    ("algorithms", ["aevb.algorithms"]),
    ("config", ["aevb.config", "aevb.presets"]),
    ("run directories", ["aevb.rundir", "aevb.features"]),
    ("outputs", ["aevb.outputs"]),
    ("training", ["aevb.training"]),
    ("the command", ["aevb.cli", "aevb.__main__"]),
]


def long_modules() -> dict:
    return {str(p.relative_to(SRC)): n for p in sorted(SRC.rglob("*"))
            if p.suffix in (".py", ".c", ".h") and (n := len(p.read_text().splitlines())) > 300}


def long_functions() -> dict:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 60:
                    found[f"{path.relative_to(SRC)}:{node.name}"] = n
    return found


def name_comparisons() -> list:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = str(path.relative_to(SRC))
        if rel in REGISTRIES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                consts = [c.value for c in [node.left, *node.comparators]
                          if isinstance(c, ast.Constant)]
                consts += [e.value for c in node.comparators if isinstance(c, (ast.Tuple, ast.List))
                           for e in c.elts if isinstance(e, ast.Constant)]
                if any(v in NAMES for v in consts if isinstance(v, str)):
                    found.append(f"{rel}:{node.lineno}")
    return found


def module_name(path: Path) -> str:
    """src/aevb/maths/objectives.py -> aevb.maths.objectives; a package's __init__ -> its name."""
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict:
    """Every aevb module -> the aevb modules it imports, at its top or inside a function."""
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: package.count(".") + 2 - node.level]
                module = ".".join(base + ([node.module] if node.module else []))
                found |= {f"{module}.{a.name}" if f"{module}.{a.name}" in files else module
                          for a in node.names}
        graph[name] = found - {name}
    return graph


def layer(module: str) -> int:
    """The index in LAYERS of `module`'s layer."""
    best = max(((len(prefix), i) for i, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
                if module == prefix or (prefix != "aevb" and module.startswith(prefix + "."))),
               default=None)
    if best is None:
        raise ValueError(f"{module} is in no layer of LAYERS")
    return best[1]


def layer_breaches(graph: dict) -> list:
    """'a -> b' for every import from a lower layer to a higher one. The package itself
    (`aevb/__init__.py`, the public names loaded on first use) is the one exception."""
    return sorted(f"{a} ({LAYERS[layer(a)][0]}) -> {b} ({LAYERS[layer(b)][0]})"
                  for a, deps in graph.items() if a != "aevb" for b in deps
                  if layer(b) > layer(a))


def circles(graph: dict) -> list:
    """The modules that import themselves back, directly or through others."""
    def reaches(start, goal, seen):
        return any(d == goal or (d not in seen and reaches(d, goal, seen | {d}))
                   for d in graph.get(start, ()))

    return sorted(name for name in graph if reaches(name, name, frozenset()))


if __name__ == "__main__":
    result = {"modules_over_300_lines": long_modules(),
              "functions_over_60_lines": long_functions(),
              "name_comparisons_outside_registries": name_comparisons(),
              "imports_to_a_higher_layer": layer_breaches(import_graph()),
              "import_circles": circles(import_graph())}
    print(json.dumps(result, indent=1))
    sys.exit(0)
