"""Stage 1: a speech-recognition model (alias, Hub id or folder) -> ONNX files plus its processor files."""

from asr_engines.export.models import ALIASES, ModelError, ModelSource, resolve_model
from asr_engines.export.onnx_export import OPSET, ExportError, ExportReport, export_onnx

__all__ = ["ALIASES", "OPSET", "ExportError", "ExportReport", "ModelError", "ModelSource", "export_onnx", "resolve_model"]
