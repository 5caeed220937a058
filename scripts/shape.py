"""The code-shape goals of docs/architecture.md, measured: modules over 300 lines (C
included), functions over 60 lines, and comparisons of an algorithm or network name with a
string outside their registries.

    .venv/bin/python scripts/shape.py        # prints one JSON object
"""
import ast
import json
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "aevb"
NAMES = {"aevb", "wake-sleep", "mcem", "full-vb", "mlp", "conv"}
# where the names are defined: the registries and the objects they name
REGISTRIES = {"algorithms/__init__.py", "families.py", "config.py", "reproduce.py"}


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


if __name__ == "__main__":
    result = {"modules_over_300_lines": long_modules(),
              "functions_over_60_lines": long_functions(),
              "name_comparisons_outside_registries": name_comparisons()}
    print(json.dumps(result, indent=1))
    sys.exit(0)
