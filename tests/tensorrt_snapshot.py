"""A stand-in `tensorrt` module for each TensorRT version, built from that version's names-only snapshot
(tests/tensorrt_api/<version>.json, listed from NVIDIA's real bindings): it has exactly the module names,
classes, enum members, methods and properties that version has. Code that touches a name the version lacks
fails here as it would on a board, and every name touched is recorded, per version.

Objects our code receives from TensorRT (a network and its layers, a deserialized engine, an execution
context) are our own stand-ins wrapped in `Guarded`, which lets through only the members the version's class
has. The network stand-in is made from a real ONNX graph: one layer per node, named as onnx-tensorrt names
layers (after their node), typed from the op, with the output dtypes ONNX's shape inference finds.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np

SNAPSHOTS = Path(__file__).resolve().parent / "tensorrt_api"
VERSIONS = sorted((path.stem for path in SNAPSHOTS.glob("*.json")), key=lambda v: tuple(int(p) for p in v.split(".")))


class Recorder:
    """Every (class, member) a run touched; `("tensorrt", name)` for module attributes."""

    def __init__(self) -> None:
        self.touched: set[tuple[str, str]] = set()


class EnumMember:
    """A member of a TensorRT enum (or a DataType constant such as trt.float32): hashable, compared by identity."""

    def __init__(self, enum: str, name: str):
        self.enum, self.name = enum, name

    def __repr__(self) -> str:
        return f"{self.enum}.{self.name}"


class Guarded:
    """Our stand-in `target`, seen through the members TensorRT's `class_name` has in this version."""

    def __init__(self, target, class_name: str, module: SnapshotModule):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_class", class_name)
        object.__setattr__(self, "_module", module)

    def _check(self, name: str) -> None:
        module, class_name = object.__getattribute__(self, "_module"), object.__getattribute__(self, "_class")
        if name not in module.members(class_name):
            raise AttributeError(f"TensorRT {module.__version__}: {class_name} has no {name!r}")
        module.recorder.touched.add((class_name, name))

    def __getattr__(self, name: str):
        self._check(name)
        return getattr(object.__getattribute__(self, "_target"), name)

    def __setattr__(self, name: str, value) -> None:
        self._check(name)
        setattr(object.__getattribute__(self, "_target"), name, value)


class SnapshotModule(types.ModuleType):
    """`tensorrt` as one snapshot lists it. Classes are real classes (Polygraphy subclasses the calibrator)."""

    def __init__(self, version: str, recorder: Recorder | None = None):
        super().__init__("tensorrt")
        data = json.loads((SNAPSHOTS / f"{version}.json").read_text())
        self.__version__ = data["version"]
        self._names: dict = data["module"]
        self.recorder = recorder or Recorder()
        self.behaviours: dict[str, object] = {}  # class name -> what calling it makes (Runtime, Logger, ...)
        self._made: dict[str, object] = {}

    def members(self, class_name: str) -> set[str]:
        members = self._names.get(class_name)
        return set(members) if isinstance(members, list) else set()

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in self._names:
            raise AttributeError(f"TensorRT {self.__version__} has no tensorrt.{name}")
        self.recorder.touched.add(("tensorrt", name))
        if name not in self._made:
            self._made[name] = self._make(name, self._names[name])
        return self._made[name]

    def _make(self, name: str, kind):
        if kind == "DataType":  # trt.float32, trt.float16, ...: constants of the DataType enum
            return getattr(self.DataType, _DATATYPE_CONSTANTS[name])
        if kind == "function":
            return _FUNCTIONS.get(name, _unavailable(name))
        if isinstance(kind, list):
            return _snapshot_class(self, name, kind)
        return kind


_DATATYPE_CONSTANTS = {"float32": "FLOAT", "float16": "HALF", "int8": "INT8", "int32": "INT32", "int64": "INT64",
                       "bool": "BOOL", "uint8": "UINT8", "fp8": "FP8", "bfloat16": "BF16", "int4": "INT4", "fp4": "FP4",
                       "e8m0": "E8M0"}
_NUMPY_TYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
                "BOOL": np.bool_, "UINT8": np.uint8}
_FUNCTIONS = {"nptype": lambda dtype: _NUMPY_TYPES[dtype.name]}


def _unavailable(name: str):
    def call(*args, **kwargs):
        raise NotImplementedError(f"the stand-in has no behaviour for tensorrt.{name}")

    return call


class _SnapshotClass(type):
    """Metaclass of the snapshot's classes: class-level names (`trt.LayerType.SOFTMAX`, `trt.Logger.WARNING`) are
    checked against the snapshot and recorded; calling a class makes the behaviour a test registered for it
    (`module.behaviours[name]`), guarded. Subclassing works (Polygraphy subclasses the calibrator)."""

    def __getattribute__(cls, attribute: str):
        if attribute.startswith("_"):
            return type.__getattribute__(cls, attribute)
        module = type.__getattribute__(cls, "_snapshot_module")
        name = type.__getattribute__(cls, "_snapshot_name")
        if attribute not in type.__getattribute__(cls, "_snapshot_members"):
            raise AttributeError(f"TensorRT {module.__version__}: {name} has no {attribute!r}")
        module.recorder.touched.add((name, attribute))
        return type.__getattribute__(cls, attribute)

    def __call__(cls, *args, **kwargs):
        module, name = type.__getattribute__(cls, "_snapshot_module"), type.__getattribute__(cls, "__name__")
        behaviour = module.behaviours.get(name)
        if behaviour is None:
            return super().__call__(*args, **kwargs)
        return Guarded(behaviour(*args, **kwargs), name, module)


def _snapshot_class(module: SnapshotModule, name: str, members: list[str]) -> type:
    """A real class named like TensorRT's: its upper-case members are enum members, its methods do nothing."""
    namespace = {member: EnumMember(name, member) for member in members if member.isupper()}
    namespace.update({member: _unavailable(f"{name}.{member}") for member in members
                      if not member.isupper() and not member.startswith("_")})
    namespace.update({"__init__": lambda self, *args, **kwargs: None, "_snapshot_module": module,
                      "_snapshot_name": name, "_snapshot_members": frozenset(members)})
    return _SnapshotClass(name, (), namespace)


# -- a network made from an ONNX graph, as onnx-tensorrt's parser would name and type its layers -------------------
_LAYER_TYPES = {
    "Conv": "CONVOLUTION", "MatMul": "MATRIX_MULTIPLY", "Gemm": "MATRIX_MULTIPLY", "LayerNormalization": "NORMALIZATION",
    "InstanceNormalization": "NORMALIZATION", "GroupNormalization": "NORMALIZATION", "Softmax": "SOFTMAX",
    "Shape": "SHAPE", "Constant": "CONSTANT", "Cast": "CAST", "Gather": "GATHER", "Slice": "SLICE",
    "Concat": "CONCATENATION", "Reshape": "SHUFFLE", "Transpose": "SHUFFLE", "Unsqueeze": "SHUFFLE", "Squeeze": "SHUFFLE",
    "ReduceMean": "REDUCE", "Erf": "UNARY", "Sqrt": "UNARY", "Tanh": "UNARY", "Pad": "PADDING",
    "QuantizeLinear": "QUANTIZE", "DequantizeLinear": "DEQUANTIZE", "Range": "FILL", "Expand": "SLICE", "Where": "SELECT",
    "ConstantOfShape": "FILL", "Trilu": "ELEMENTWISE",
}
_ONNX_DTYPES = {1: "FLOAT", 10: "HALF", 7: "INT64", 6: "INT32", 9: "BOOL", 3: "INT8"}


class StandInTensor:
    def __init__(self, dtype):
        self.dtype = dtype


class StandInLayer:
    """What the builder reads and writes on an ILayer."""

    def __init__(self, name: str, layer_type, outputs: list):
        self.name, self.type, self._outputs = name, layer_type, outputs
        self.num_outputs = len(outputs)
        self.precision = None
        self.output_types: dict[int, object] = {}

    @property
    def precision_is_set(self) -> bool:
        return self.precision is not None

    def get_output(self, index: int):
        return self._outputs[index]

    def set_output_type(self, index: int, dtype) -> None:
        self.output_types[index] = dtype


class StandInNetwork:
    def __init__(self, layers: list):
        self.layers = layers
        self.num_layers = len(layers)

    def get_layer(self, index: int):
        return self.layers[index]


def network_from_onnx(onnx_path: Path, module: SnapshotModule) -> tuple[Guarded, list[StandInLayer]]:
    """An INetworkDefinition stand-in with one layer per node of the ONNX graph (and the bare layers)."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    dtypes = {value.name: value.type.tensor_type.elem_type for value in
              list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input)}
    dtypes.update({init.name: init.data_type for init in model.graph.initializer})
    has_int64 = "INT64" in module.members("DataType")

    def trt_dtype(tensor: str):
        name = _ONNX_DTYPES.get(dtypes.get(tensor, 1), "FLOAT")
        return getattr(module.DataType, "INT32" if name == "INT64" and not has_int64 else name)  # 8.x has no INT64

    layers = []
    for node in model.graph.node:
        layer_type = getattr(module.LayerType, _LAYER_TYPES.get(node.op_type, "ELEMENTWISE"))
        outputs = [Guarded(StandInTensor(trt_dtype(out)), "ITensor", module) for out in node.output]
        layers.append(StandInLayer(node.name, layer_type, outputs))
    guarded = [Guarded(layer, "ILayer", module) for layer in layers]
    return Guarded(StandInNetwork(guarded), "INetworkDefinition", module), layers
