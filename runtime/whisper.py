"""Whisper from three engines (encoder, decoder, decoder with KV cache): greedy decoding, as transformers'
`generate` does it with num_beams=1 — the model's prompt (no timestamps), suppressed tokens, tokens
suppressed at the first step, stop at end-of-text or max_length. Audio over 30 s is transcribed in
consecutive 30 s windows, never cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calibration.features import front_end_from_config
from runtime.engine import Engine

PAST_PREFIX, PRESENT_PREFIX = "past_key_values.", "present."


class WhisperRecognizer:
    """Transcribes 16 kHz mono float32 audio with a Whisper engine set and its tokenizer."""

    def __init__(self, encoder: Engine, decoder: Engine, decoder_with_past: Engine, sidecar: dict):
        from tokenizers import Tokenizer

        self.encoder, self.decoder, self.decoder_with_past = encoder, decoder, decoder_with_past
        self.sidecar = sidecar
        self.name = sidecar["engine"]
        self.backend, self.device, self.precision = encoder.backend, encoder.device, sidecar["precision"]
        self._front_end = front_end_from_config(sidecar["front_end"])
        settings = sidecar["decoder"]
        self._tokenizer = Tokenizer.from_file(str(Path(sidecar["_dir"]) / settings["tokenizer"]))
        self._prompt = list(settings["prompt"])
        self._eos = settings["eos_id"]
        self._suppress = np.asarray(settings["suppress_tokens"], np.int64)
        self._begin_suppress = np.asarray(settings["begin_suppress_tokens"], np.int64)
        self._max_length = settings["max_length"]
        self._window = int(self._front_end.chunk_s * 16_000)
        self._past_names = [info.name for info in decoder_with_past.inputs if info.name.startswith(PAST_PREFIX)]

    def transcribe(self, audio: np.ndarray) -> str:
        windows = [audio[start : start + self._window] for start in range(0, max(len(audio), 1), self._window)]
        return " ".join(text for text in (self.decode_tokens(self.generate(window)) for window in windows) if text)

    def decode_tokens(self, tokens: list[int]) -> str:
        return self._tokenizer.decode(tokens, skip_special_tokens=True).strip()

    def generate(self, audio: np.ndarray) -> list[int]:
        """Greedy token ids (prompt and end-of-text excluded) for one window of at most 30 s."""
        hidden = self.encoder.run(self._front_end(audio))["last_hidden_state"]
        outputs = self.decoder.run({"input_ids": np.asarray([self._prompt], np.int64), "encoder_hidden_states": hidden})
        past = {name: outputs[PRESENT_PREFIX + name[len(PAST_PREFIX):]] for name in self._past_names}
        tokens: list[int] = []
        for step in range(self._max_length - len(self._prompt)):
            logits = np.array(outputs["logits"][0, -1], np.float32)
            logits[self._suppress] = -np.inf
            if step == 0:
                logits[self._begin_suppress] = -np.inf
            token = int(np.argmax(logits))
            if token == self._eos:
                break
            tokens.append(token)
            outputs = self.decoder_with_past.run({"input_ids": np.asarray([[token]], np.int64), **past})
            for name in self._past_names:
                present = PRESENT_PREFIX + name[len(PAST_PREFIX):]
                if present in outputs:  # self-attention cache grows; cross-attention cache stays
                    past[name] = outputs[present]
        return tokens

    def close(self) -> None:
        for engine in (self.encoder, self.decoder, self.decoder_with_past):
            engine.close()
