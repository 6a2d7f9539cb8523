"""Moonshine from three engines (encoder, decoder, decoder with KV cache): greedy decoding as transformers'
`generate` does it with num_beams=1 — the start token, then the most likely token until end-of-text or the
most tokens the audio's length allows (`max_tokens_per_s`, as Moonshine's own runtimes bound it).

The encoder reads the audio as it is (no 30 s window, no padding): its cost follows the audio's length. Audio
up to MOONSHINE_MAX_INPUT_S is read in one pass; a longer recording is read a voice-activity segment at a time
(the streaming segmenter, fed the recording in blocks: memory follows the segment, not the recording), and a
stream decodes each segment once as it closes (streaming.py). Audio shorter than the encoder's first output
frame (MOONSHINE_MIN_SAMPLES) has no text.
"""

from __future__ import annotations

import math

import numpy as np

from asr_engines.audio import SAMPLE_RATE, Recording, Samples, checked_samples
from asr_engines.families import MOONSHINE_MAX_INPUT_S, MOONSHINE_MIN_SAMPLES
from asr_engines.features import front_end_from_config
from asr_engines.manifest import EngineManifest
from asr_engines.runtime.engine import ClosedOnExit, Engine, InFlight
from asr_engines.runtime.streaming import SegmentedStream, StreamOptions

PAST_PREFIX, PRESENT_PREFIX = "past_key_values.", "present."
#: Samples handed to the segmenter at a time when a long recording is read segment by segment.
BLOCK = 30 * SAMPLE_RATE


class MoonshineRecognizer(ClosedOnExit):
    """Transcribes 16 kHz mono float32 audio with a Moonshine engine set and its tokenizer."""

    def __init__(self, encoder: Engine, decoder: Engine, decoder_with_past: Engine, manifest: EngineManifest):
        from tokenizers import Tokenizer

        self.encoder, self.decoder, self.decoder_with_past = encoder, decoder, decoder_with_past
        self.manifest = manifest
        self.name = manifest.engine
        self.backend, self.device = encoder.backend, encoder.device
        self.precision, self.variant = manifest.precision, manifest.variant
        self._front_end = front_end_from_config(manifest.front_end)
        settings = manifest.decoder
        self._tokenizer = Tokenizer.from_file(str(manifest.folder / settings["tokenizer"]))
        self._start, self._eos = settings["start_id"], settings["eos_id"]
        self._tokens_per_s, self._max_length = settings["max_tokens_per_s"], settings["max_length"]
        self._past_names = [info.name for info in decoder_with_past.inputs if info.name.startswith(PAST_PREFIX)]
        self._takes = {engine: {info.name for info in engine.inputs} for engine in (decoder, decoder_with_past)}
        self.segmented_recordings = 0  # recordings over one input's length, read segment by segment
        self._in_flight = InFlight(self.name)

    def transcribe(self, audio: np.ndarray | Recording, sample_rate: int = SAMPLE_RATE) -> str:
        audio = checked_samples(audio, sample_rate)
        if len(audio) <= MOONSHINE_MAX_INPUT_S * SAMPLE_RATE:
            return self.decode_tokens(self.generate(audio[:]))
        self.segmented_recordings += 1
        stream = self.stream()
        for first in range(0, len(audio), BLOCK):
            stream.accept(audio[first : first + BLOCK])
        return stream.finish().text

    def transcribe_batch(self, audios: list[np.ndarray]) -> list[str]:
        # One at a time: each encoder pass takes its own length, so no padding (and no padded-batch drift) enters.
        return [self.transcribe(audio) for audio in audios]

    def stream(self, options: StreamOptions | None = None) -> SegmentedStream:
        """A live stream decoded segment by segment (streaming.py)."""
        return SegmentedStream(lambda samples: self.decode_tokens(self.generate(samples)), options or StreamOptions())

    def decoding(self) -> dict:
        return {"max_tokens_per_s": self._tokens_per_s, "segmented_recordings": self.segmented_recordings}

    def decode_tokens(self, tokens: list[int]) -> str:
        return self._tokenizer.decode(tokens, skip_special_tokens=True).strip()

    def max_new_tokens(self, samples: int) -> int:
        """The most tokens a decode of `samples` of audio may write (at least one, at most the positions allow)."""
        return max(1, min(self._max_length - 1, math.ceil(samples / SAMPLE_RATE * self._tokens_per_s)))

    def generate(self, audio: Samples) -> list[int]:
        """Greedy token ids (start and end-of-text excluded) for at most MOONSHINE_MAX_INPUT_S of audio."""
        if len(audio) < MOONSHINE_MIN_SAMPLES:
            return []
        with self._in_flight.call():
            return self._greedy(np.asarray(audio, np.float32))

    def _greedy(self, audio: np.ndarray) -> list[int]:
        _, encoded = self.encoder.run_device(self._front_end(audio))
        hidden = encoded["last_hidden_state"]
        context = {"encoder_hidden_states": hidden, "encoder_attention_mask": np.ones((1, len(audio)), np.int64)}
        feeds = {"input_ids": np.asarray([[self._start]], np.int64), **context}
        host, outputs = self.decoder.run_device({name: value for name, value in feeds.items() if name in self._takes[self.decoder]},
                                                to_host=["logits"])
        past = {name: outputs[PRESENT_PREFIX + name[len(PAST_PREFIX):]] for name in self._past_names}
        tokens: list[int] = []
        for _ in range(self.max_new_tokens(len(audio))):
            token = int(np.argmax(host["logits"][0, -1]))
            if token == self._eos:
                break
            tokens.append(token)
            feeds = {"input_ids": np.asarray([[token]], np.int64), **context, **past}
            host, outputs = self.decoder_with_past.run_device(
                {name: value for name, value in feeds.items() if name in self._takes[self.decoder_with_past]}, to_host=["logits"])
            for name in self._past_names:
                present = PRESENT_PREFIX + name[len(PAST_PREFIX):]
                if present in outputs:  # self-attention cache grows; cross-attention cache stays
                    past[name] = outputs[present]
        return tokens

    def close(self) -> None:
        """Wait for transcriptions in flight, then free the engines; transcribing after it raises EngineError."""
        if self._in_flight.close():
            for engine in (self.encoder, self.decoder, self.decoder_with_past):
                engine.close()
