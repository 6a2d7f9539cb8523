"""Live captions from the microphone with the streaming recognizer (needs `pip install sounddevice`).

    python examples/live_captions.py ENGINE.json [--device N] [--endpoint SECONDS]

The line being spoken is rewritten as its hypothesis changes; once the VAD hears SECONDS of silence after
speech, the utterance is final and printed on its own line. Ctrl-C stops.
"""

import argparse
import queue
import sys

from asr_engines import load_recognizer

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("engine")
parser.add_argument("--device", type=int, help="input device (python -m sounddevice lists them)")
parser.add_argument("--endpoint", type=float, default=0.8)
args = parser.parse_args()
try:
    import sounddevice
except ImportError:
    sys.exit("live_captions: needs sounddevice: pip install sounddevice")

chunks: queue.Queue = queue.Queue()
rate = int(sounddevice.query_devices(args.device, "input")["default_samplerate"])
with load_recognizer(args.engine) as recognizer, sounddevice.InputStream(
        samplerate=rate, channels=1, dtype="float32", device=args.device, blocksize=rate // 10,
        callback=lambda data, frames, time, status: chunks.put(data[:, 0].copy())):
    stream = recognizer.stream()
    try:
        while True:
            stream.accept(chunks.get(), sample_rate=rate)  # resampled to 16 kHz inside the stream
            print("\r\033[K" + stream.partial()[-100:], end="", flush=True)
            if stream.endpoint(args.endpoint):
                print("\r\033[K" + stream.finish().text, flush=True)
                stream = recognizer.stream()
    except KeyboardInterrupt:
        print("\r\033[K" + stream.finish().text)  # the with-blocks close the microphone and the engine
