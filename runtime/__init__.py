"""Stage 4: load an engine, feed it audio, decode text. Lean: numpy, plus the backend's own library.

Apps import it through the namespace (`from asr_engines import load_recognizer`); this file imports nothing, so
a checkout's `python -m runtime.bench` loads nothing under a second name before it hands over.
"""
