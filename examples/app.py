"""An app on asr-engines' runtime alone (`pip install 'asr-engines[cpu]'`): load an engine folder copied anywhere,
transcribe a file, then stream the same audio as a microphone would deliver it (0.5 s chunks), printing the
caption as it grows and the final text with its segments.

    python examples/app.py ENGINE.json AUDIO_FILE
"""

import sys

from asr_engines import load_recognizer
from asr_engines.audio import SAMPLE_RATE, load_audio

with load_recognizer(sys.argv[1]) as recognizer:  # the manifest, or an engine file beside it
    audio = load_audio(sys.argv[2])  # any format and rate soundfile reads -> 16 kHz mono float32
    print("file:", recognizer.transcribe(audio))

    stream = recognizer.stream()  # voice activity detection decides what is decoded, and when
    chunk = SAMPLE_RATE // 2
    for start in range(0, len(audio), chunk):  # stands in for a microphone's callback
        stream.accept(audio[start : start + chunk])
        print(f"caption at {(start + chunk) / SAMPLE_RATE:4.1f} s:", stream.partial())
    transcript = stream.finish()
    for segment in transcript.segments:
        print(f"segment {segment.start:6.2f}-{segment.end:6.2f} s: {segment.text}")
    print("final:", transcript.text)
