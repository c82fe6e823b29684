"""Layering rules: only the Discord adapter imports discord."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports_discord(path: Path) -> bool:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "discord" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "discord":
            return True
    return False


def test_only_discord_adapter_imports_discord():
    offenders = [
        str(p.relative_to(ROOT))
        for folder in ("bot", "models")
        for p in (ROOT / folder).rglob("*.py")
        if _imports_discord(p) and "adapters/discord" not in p.as_posix()
    ]
    assert offenders == []


def test_the_checker_sees_a_discord_import(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from discord import Embed\n")
    assert _imports_discord(f)
