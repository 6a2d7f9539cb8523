"""An app on asr-engines' runtime alone (`pip install 'asr-engines[cpu]'`): load an engine folder copied anywhere,
transcribe a file, then the same audio as a microphone would deliver it, in 0.5 s chunks with a caption
updated every 2 s.

    python examples/app.py ENGINE.json AUDIO_FILE
"""

import sys

import numpy as np

from asr_engines import load_recognizer
from asr_engines.audio import SAMPLE_RATE, load_audio

recognizer = load_recognizer(sys.argv[1])  # the manifest, or an engine file beside it
audio = load_audio(sys.argv[2])  # any format and rate soundfile reads -> 16 kHz mono float32
print("file:", recognizer.transcribe(audio))

heard, chunk = np.zeros(0, np.float32), SAMPLE_RATE // 2
for start in range(0, len(audio), chunk):  # stands in for a microphone's callback
    heard = np.concatenate([heard, audio[start : start + chunk]])
    if len(heard) % (2 * SAMPLE_RATE) < chunk or start + chunk >= len(audio):
        print(f"caption at {len(heard) / SAMPLE_RATE:4.1f} s:", recognizer.transcribe(heard))
recognizer.close()
