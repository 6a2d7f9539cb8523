"""The import graph says what the README's picture says: data flows one way through the stages, and the
pieces every stage uses sit in `common/` at the bottom. Found from the code's own imports, so a new arrow
that runs back up fails here without anyone updating a list."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Bottom to top. A module may import its own stage and the stages below it, never one above.
STAGES = ("common", "export", "calibration", "engines", "runtime", "measure", "check_device")
#: `python -m runtime.bench` is the command users type; the bench itself measures, so it lives in measure.
COMMAND_ALIASES = {"runtime.bench": "measure.bench"}
BACKEND_FILES = {"engines.onnxruntime_build", "engines.tensorrt_build", "runtime.onnxruntime_engine", "runtime.tensorrt_engine"}


def imports() -> dict[str, set[str]]:
    """module -> the first-party modules it imports (at any depth: lazy imports count too)."""
    found = {}
    for stage in STAGES:
        for path in (ROOT / stage).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            names = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module)
            found[module] = {name for name in names if name.split(".")[0] in STAGES}
    return found


def test_no_stage_reaches_up():
    """Library modules import their own stage and those below. Commands (`__main__`) may wire later stages in,
    as `python -m engines` hands the build measure's WER probe; no library module does."""
    graph = imports()
    assert len(graph) > 40 and "measure.bench" in graph  # the walk saw the code
    upward = [f"{module} -> {target}" for module, targets in graph.items() for target in targets
              if STAGES.index(target.split(".")[0]) > STAGES.index(module.split(".")[0])
              and COMMAND_ALIASES.get(module) != target and not module.endswith("__main__")]
    assert upward == []
    assert graph["runtime.bench"] == {"common.extras", "measure.bench"}  # the alias is only that, behind its extras check


def test_common_depends_on_no_stage():
    graph = imports()
    assert all(target.startswith("common") for module, targets in graph.items() if module.startswith("common") for target in targets)


def test_backends_are_reached_only_through_their_registries():
    """Code outside a backend's own files names it only in the registry that loads it by name."""
    graph = imports()
    registries = {"engines.builder", "runtime.engine"}
    reaching = [f"{module} -> {target}" for module, targets in graph.items() for target in targets & BACKEND_FILES
                if module not in registries | BACKEND_FILES and not module.startswith("check_device")]
    assert reaching == []
