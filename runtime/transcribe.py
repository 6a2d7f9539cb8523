"""`python -m runtime.transcribe ENGINE AUDIO...`: print what an engine hears in each file.

Part of the base install (argparse, no click): an app's machine can run it with the runtime alone.
"""

from __future__ import annotations

import argparse
import sys

from common.audio import AudioError, load_audio
from engines.sidecar import SidecarError
from runtime.engine import EngineError
from runtime.recognizer import load_recognizer
from runtime.whisper import PRECISION_DEFAULT, TrimMargin, parse_trim_margin


def _trim_margin(text: str) -> TrimMargin:
    try:
        return parse_trim_margin(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.transcribe",
        description="Transcribe each AUDIO file (any format soundfile reads, any rate, any channels) with ENGINE "
                    "(an engine file or its .json sidecar). One file: its text; several: path<TAB>text per line.")
    parser.add_argument("engine", help="engine file (.onnx, .plan) or its sidecar (.json)")
    parser.add_argument("audio", nargs="+", help="audio files")
    parser.add_argument("--threads", type=int, help="CPU threads for the backend [default: the backend's]")
    parser.add_argument("--trim-margin", type=_trim_margin, default=PRECISION_DEFAULT, metavar="SECONDS|off",
                        help="Whisper on ONNX Runtime: run the encoder on the audio plus SECONDS, not a whole 30 s "
                             "window (faster on short clips; a window whose text loops is decoded again whole); off: "
                             "the whole window [default: 8 s where the encoder is fp32 or fp16 (ONNX Runtime's fp32, fp16 "
                             "and int8 engines), which stayed within 0.5 WER points of the whole window on the bundled set, "
                             "clean and noisy; the whole window for an int8 encoder, which lost 0.8 on noisy audio]")
    arguments = parser.parse_args(argv)
    try:
        recognizer = load_recognizer(arguments.engine, threads=arguments.threads, trim_margin_s=arguments.trim_margin)
    except (SidecarError, EngineError, ValueError) as error:
        print(f"transcribe: {error}", file=sys.stderr)
        return 1
    failed = False
    for path in arguments.audio:
        try:
            text = recognizer.transcribe(load_audio(path))
        except AudioError as error:
            print(f"transcribe: {error}", file=sys.stderr)
            failed = True
            continue
        print(f"{path}\t{text}" if len(arguments.audio) > 1 else text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
