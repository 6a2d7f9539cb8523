"""asr-engines: speech-recognition models as FP32/FP16/INT8 engines, and the runtime that runs them in an app.

    from asr_engines import load_recognizer

    with load_recognizer("engines/wav2vec2-int8.json") as recognizer:
        text = recognizer.transcribe(audio_16k_mono_float32)

A long file is best handed over as `Recording(path)`: decoded to disk once, read a window at a time, so memory
stays bounded however long it is (`with Recording("meeting.flac") as recording: recognizer.transcribe(recording)`).
`load_engine` gives the bare graph (named numpy arrays in and out) for apps with their own pre/post-processing;
`load_manifest` reads an engine's manifest; `share_thread_pool(threads)`, called once before loading, runs every ONNX
Runtime engine of the process on one CPU thread pool (faster for Whisper and Moonshine; process-wide, read its
docstring first). Names are imported on first use, so `import asr_engines` (and the
`asr-engines` command's help) loads no numerical library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asr_engines.audio import AudioError, Recording, load_audio
    from asr_engines.manifest import EngineManifest, ManifestError, load_manifest
    from asr_engines.runtime.backends import load_engine, share_thread_pool
    from asr_engines.runtime.engine import Engine, EngineError, TensorInfo
    from asr_engines.runtime.recognizer import Recognizer, load_recognizer
    from asr_engines.variants import Precision, Variant

#: public name -> the module that defines it
_EXPORTS = {
    "AudioError": "asr_engines.audio", "load_audio": "asr_engines.audio", "Recording": "asr_engines.audio",
    "EngineManifest": "asr_engines.manifest", "ManifestError": "asr_engines.manifest", "load_manifest": "asr_engines.manifest",
    "Engine": "asr_engines.runtime.engine", "EngineError": "asr_engines.runtime.engine", "TensorInfo": "asr_engines.runtime.engine",
    "load_engine": "asr_engines.runtime.backends", "share_thread_pool": "asr_engines.runtime.backends",
    "Recognizer": "asr_engines.runtime.recognizer", "load_recognizer": "asr_engines.runtime.recognizer",
    "Precision": "asr_engines.variants", "Variant": "asr_engines.variants",
}
__all__ = ["AudioError", "Engine", "EngineError", "EngineManifest", "ManifestError", "Precision", "Recognizer", "Recording", "TensorInfo",
           "Variant", "load_audio", "load_engine", "load_manifest", "load_recognizer", "share_thread_pool"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'asr_engines' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
