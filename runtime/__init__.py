"""Stage 4: load an engine, feed it audio, decode text. Lean: numpy, plus the backend's own library.

    from runtime import load_recognizer
    text = load_recognizer("engines/wav2vec2-int8.json").transcribe(audio_16k_mono_float32)

`load_engine` gives the bare graph (named numpy arrays in and out) for apps with their own pre/post-processing.
"""

from runtime.engine import Engine, EngineError, TensorInfo, load_engine
from runtime.recognizer import Recognizer, load_recognizer

__all__ = ["Engine", "EngineError", "Recognizer", "TensorInfo", "load_engine", "load_recognizer"]
