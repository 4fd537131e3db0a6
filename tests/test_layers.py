"""The package's structure: imports flow one way, and importing changes no global state."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "cnnlab"

# Lower layers never import higher ones (imports inside functions count: they are dependencies too).
# The same picture is drawn in README.md ("Layout"); test_the_readme_draws_these_layers checks it.
# The package root only holds __version__ and lazy shortcuts for users, so it is the top.
LAYERS = {
    "cnnlab.atomic": 0, "cnnlab.config": 0, "cnnlab.runfolder": 0, "cnnlab.version": 0,   # leaves: files, config, the run-folder reader
    "cnnlab.data": 1,
    "cnnlab.models": 2,
    "cnnlab.train": 3,                                # the loop, the task contract, classification
    "cnnlab.siamese": 4,                              # another task, built on the contract
    "cnnlab.tasks": 5,                                # the one table of tasks
    "cnnlab.runs": 6,                                 # the run handle: knows every task
    "cnnlab.transfer": 7,                             # source runs and teachers, through the handle
    "cnnlab.evaluate": 8, "cnnlab.features": 8,
    "cnnlab.report": 9,
    "cnnlab.explain": 10, "cnnlab.export": 10,
    "cnnlab.pipeline": 11,
    "cnnlab.search": 12,                              # sweeps and searches run whole experiments
    "cnnlab.cli": 13,                                 # the command line: one module per command group
    "cnnlab": 14,
}


def layer_of(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYERS:
            return LAYERS[key]
    raise AssertionError(f"{module} has no layer: add it to LAYERS in {__file__}")


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str) -> set[str]:
    found = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:   # relative: resolve against the package
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.add(node.module)
    return {m for m in found if m == "cnnlab" or m.startswith("cnnlab.")}


def test_imports_flow_one_way():
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        module = module_name(path)
        for imported in imports_of(path, module):
            if layer_of(imported) > layer_of(module):
                wrong.append(f"{module} (layer {layer_of(module)}) imports {imported} (layer {layer_of(imported)})")
    assert not wrong, "\n".join(wrong)


def test_the_check_catches_an_upward_import(tmp_path):
    fake = SRC / "train" / "loop.py"
    assert "cnnlab.report" not in imports_of(fake, "cnnlab.train.loop")
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from cnnlab.report.curves import plot_curves\n")
    assert imports_of(bad, "cnnlab.train.x") == {"cnnlab.report.curves"}


PROBE = """
import matplotlib
matplotlib.use("svg")
import torch
torch.set_num_threads(1)
before = (matplotlib.get_backend(), torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
          torch.backends.cudnn.benchmark)
import importlib, pkgutil, cnnlab
for info in pkgutil.walk_packages(cnnlab.__path__, "cnnlab."):
    importlib.import_module(info.name)
after = (matplotlib.get_backend(), torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
         torch.backends.cudnn.benchmark)
assert before == after, (before, after)
print("ok", len(list(pkgutil.walk_packages(cnnlab.__path__, "cnnlab."))))
"""


def test_importing_every_module_changes_no_global_state():
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stderr[-2000:]


@pytest.mark.parametrize("name", ["summary_of(", "first_seen", "lead's", "random.seed"])
def test_no_leftovers(name):
    hits = [str(p) for p in SRC.rglob("*.py") if name in p.read_text()]
    assert not hits, f"{name!r} is a leftover in {hits}"


def test_the_readme_draws_these_layers():
    """README.md's "Layout" line lists the packages bottom-up in LAYERS' order, and every one exists."""
    import re

    readme = (SRC.parents[1] / "README.md").read_text()
    section = readme[readme.index("## Layout"):]
    line = section[section.index("tests/test_layers.py"):section.index("cli`.") + len("cli`.")]
    drawn = [[f"cnnlab.{name}" for name in re.findall(r"`(\w+)`", group)] for group in line.split("→")]
    drawn[0] = [n for n in drawn[0] if n != "cnnlab.test_layers"]
    assert [layer_of(group[0]) for group in drawn] == sorted(layer_of(group[0]) for group in drawn)
    for group in drawn:
        assert len({layer_of(n) for n in group}) == 1, group
        for name in group:
            assert (SRC / name.split(".")[1]).is_dir() or (SRC / f"{name.split('.')[1]}.py").is_file(), name
    listed = {n for group in drawn for n in group}
    assert listed == {k for k in LAYERS if k != "cnnlab"}, sorted(set(LAYERS) ^ listed)
