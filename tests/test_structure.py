"""The import graph says what docs/architecture.md says: one namespace, data flowing one way through the stages,
the shared modules at the bottom and the commands on top, no circles. Found from the code's own imports (lazy ones
count too), so a new arrow that runs back up fails here without anyone updating a list."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
#: Bottom to top. A module may import its own layer and the layers below it, never one above.
STAGES = ("export", "calibration", "engines", "runtime", "measure", "serve")
TOP = ("asr_engines.check_device", "asr_engines.commands", "asr_engines.cli", "asr_engines.__main__")
BACKEND_MODULES = {"asr_engines.engines.trt.builder", "asr_engines.engines.onnxrt.builder",
                   "asr_engines.runtime.onnxruntime_engine", "asr_engines.runtime.tensorrt_engine"}
REGISTRIES = {"asr_engines.engines.backends", "asr_engines.runtime.backends"}


def module_files() -> dict[str, Path]:
    """Every module of the namespace -> its file, through pyproject's package-dir mapping."""
    roots = {"asr_engines": ROOT / "asr_engines", **{package: ROOT / folder for package, folder in PACKAGE_DIRS.items()}}
    found = {}
    for package, folder in roots.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            found[".".join((package, *parts)).removesuffix(".__init__")] = path
    return found


def imports() -> dict[str, set[str]]:
    """module -> the namespace's modules it imports (at any depth: lazy imports count too)."""
    files = module_files()
    graph = {}
    for module, path in files.items():
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        graph[module] = {name for name in names if name in files and name != module}
    return graph


def layer(module: str) -> int:
    """0: the shared modules; 1..6: the stages; 7: the commands and the hardware check; 8: the package's face."""
    if module == "asr_engines":
        return len(STAGES) + 2
    if module.startswith(TOP):
        return len(STAGES) + 1
    stage = module.split(".")[1]
    return STAGES.index(stage) + 1 if stage in STAGES else 0


def test_the_walk_sees_the_whole_namespace():
    graph = imports()
    assert len(graph) > 60 and "asr_engines.measure.bench" in graph and "asr_engines.features" in graph


def test_no_module_reaches_up():
    graph = imports()
    upward = [f"{module} -> {target}" for module, targets in graph.items() for target in targets if layer(target) > layer(module)]
    assert upward == []


def test_no_import_circles():
    """No module reaches itself through imports (a registry sits apart from the base types its plug-ins import)."""
    graph = imports()
    circles = []

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph[module]):
            if target in path:
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in seen:
                seen.add(target)
                visit(target, path + [target])

    seen: set[str] = set()
    for start in sorted(graph):
        if start not in seen:
            seen.add(start)
            visit(start, [start])
    assert circles == []


def test_the_runtime_imports_no_engines_module():
    """An app's runtime reads engines through the manifest in the bottom layer, never the build stage."""
    graph = imports()
    reaching = [f"{module} -> {target}" for module, targets in graph.items() if module.startswith("asr_engines.runtime")
                for target in targets if target.startswith("asr_engines.engines")]
    assert reaching == []


def test_backends_are_reached_only_through_their_registries():
    """Code outside a backend's own files names it only in the registry that loads it by name (and the hardware
    check, which checks TensorRT itself)."""
    graph = imports()
    reaching = [f"{module} -> {target}" for module, targets in graph.items() for target in targets & BACKEND_MODULES
                if module not in REGISTRIES | BACKEND_MODULES and not module.startswith(TOP)]
    assert reaching == []


def test_the_checkout_alias_imports_nothing_of_ours():
    """`python -m runtime.bench` only hands its command line to `asr-engines bench`."""
    assert imports()["asr_engines.runtime.bench"] == set()


def test_precision_names_go_through_the_precision_type():
    """Precision and variant names are spelled as strings in asr_engines/variants.py and a few places that read
    other programs' names (TensorRT's layer types, ONNX Runtime's tensor types); everywhere else through the types."""
    literal = re.compile(r"[\"'](fp32|fp16|int8|int8-qdq|int8-dynamic)[\"']")
    sources = [path for path in module_files().values()] + list((ROOT / "benchmarks").glob("*.py"))
    count = sum(len(literal.findall(path.read_text())) for path in sources)
    assert count <= 15, count
