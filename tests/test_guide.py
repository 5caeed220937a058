"""docs/guide.md cannot drift from the code: its Python blocks run, its links resolve."""
import re
from pathlib import Path

import pytest
import torch

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)


def test_every_python_block_runs_in_order(tmp_path, monkeypatch, capsys):
    blocks = _blocks()
    assert len(blocks) >= 8
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    grad_mode = torch.is_grad_enabled()  # the guide switches gradients off for its snippets
    try:
        for i, code in enumerate(blocks):
            try:
                exec(compile(code, f"guide.md block {i + 1}", "exec"), namespace)
            except Exception as err:  # name the block that broke
                pytest.fail(f"guide block {i + 1} failed: {type(err).__name__}: {err}\n{code}")
    finally:
        torch.set_grad_enabled(grad_mode)
    assert "bound" in capsys.readouterr().out


def test_links_to_source_name_functions_that_exist():
    links = re.findall(r"\[([^\]]+)\]\((\.\./src/aevb/[a-z_/]+\.py)\)", GUIDE.read_text())
    assert len(links) >= 10
    for names, path in links:
        source = (GUIDE.parent / path).read_text()
        for name in re.findall(r"`([A-Za-z_.]+)`", names):
            leaf = name.split(".")[-1]
            assert re.search(rf"^\s*(def|class) {leaf}\b", source, flags=re.M), (name, path)


def test_every_image_exists():
    for src in re.findall(r'<img src="([^"]+)"', GUIDE.read_text()):
        assert (GUIDE.parent / src).is_file(), src


def test_every_name_the_docs_give_is_reachable_from_import_aevb():
    """Every `aevb.a.b.c` the README and docs/ name resolves by attribute access after a
    bare `import aevb` (sub-packages and their modules load on first use)."""
    import aevb

    root = GUIDE.parents[1]
    names = {m for f in [root / "README.md", *sorted((root / "docs").glob("*.md"))]
             for m in re.findall(r"`(aevb(?:\.[A-Za-z_]\w*)+)", f.read_text())}
    assert len(names) > 40 and "aevb.maths.objectives.elbo_b" in names
    missing = []
    for name in sorted(names):
        obj = aevb
        for part in name.split(".")[1:]:
            obj = getattr(obj, part, None)
            if obj is None:
                missing.append(name)
                break
    assert missing == []
