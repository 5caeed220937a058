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
