"""The package's layout: one folder per stage, lower stages never importing higher ones, every folder
named in the README's layout, and rooms a reader can take in (files and functions of bounded size)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "scripts" / "llm_energy"
# The stages in the order of the README's diagram; a stage may import its own and lower ones only.
STAGES = ["pipeline", "workloads", "models", "measurement", "modelling", "estimates", "online", "paper"]
MAX_FILE_LINES, MAX_FUNCTION_LINES = 500, 60


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imported_stages(path: Path) -> set[tuple[int, str]]:
    """(line, stage) of every llm_energy import in the module, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                 else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "llm_energy" and len(parts) > 1:
                found.add((node.lineno, parts[1]))
    return found


def test_every_module_sits_in_a_stage_folder():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert loose == []
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(STAGES)


def test_no_stage_imports_a_higher_one():
    upward = []
    for path in modules():
        rel = path.relative_to(PACKAGE)
        if len(rel.parts) == 1:
            continue  # __init__ (UserError) and __main__ (the command line) sit above every stage
        stage = rel.parts[0]
        upward += [f"{rel}:{line} imports {other}" for line, other in sorted(imported_stages(path))
                   if STAGES.index(other) > STAGES.index(stage)]
    assert upward == []


def test_the_check_sees_an_upward_import(tmp_path):
    # The check above reads imports inside functions too.
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from llm_energy.paper.figures import style\n")
    assert imported_stages(module) == {(2, "paper")}


def test_the_readme_layout_names_every_folder_of_the_package():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):readme.index("## Documentation")]
    folders = sorted({p.parent.relative_to(PACKAGE).parts[-1] for p in modules() if p.parent != PACKAGE})
    missing = [f for f in folders if not re.search(rf"(?<![\w-]){re.escape(f)}/", layout)]
    assert missing == []


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_rooms_of_bounded_size(path):
    text = path.read_text()
    assert text.count("\n") <= MAX_FILE_LINES, f"{path.name}: split it along its seams"
    functions = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in functions
            if n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []
