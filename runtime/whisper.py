"""Whisper from three engines (encoder, decoder, decoder with KV cache): greedy decoding, as transformers'
`generate` does it with num_beams=1 — the model's prompt (no timestamps), suppressed tokens, tokens
suppressed at the first step, stop at end-of-text or max_length. Audio over 30 s is transcribed in
consecutive 30 s windows, never cut. Several windows can run as one batch (`transcribe_batch`): every
sequence starts with the same prompt and advances one token per step, so no padding enters the decoder and
each sequence gets the tokens it would get alone; finished ones are fed end-of-text until all are done."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.audio import SAMPLE_RATE, check_rate
from common.features import front_end_from_config
from common.variants import Precision, Variant
from runtime.engine import Engine

PAST_PREFIX, PRESENT_PREFIX = "past_key_values.", "present."


def profile_batch_limit(sidecar: dict) -> int | None:
    """The largest batch every graph's shape profile takes (TensorRT plans); None where any batch runs."""
    limits = [shapes["max"][0] for build in sidecar["build"].values() for shapes in (build.get("profile") or {}).values()]
    return min(limits) if limits else None


class WhisperRecognizer:
    """Transcribes 16 kHz mono float32 audio with a Whisper engine set and its tokenizer."""

    def __init__(self, encoder: Engine, decoder: Engine, decoder_with_past: Engine, sidecar: dict):
        from tokenizers import Tokenizer

        self.encoder, self.decoder, self.decoder_with_past = encoder, decoder, decoder_with_past
        self.sidecar = sidecar
        self.name = sidecar["engine"]
        self.backend, self.device = encoder.backend, encoder.device
        self.precision, self.variant = Precision(sidecar["precision"]), Variant(sidecar["variant"])
        self._front_end = front_end_from_config(sidecar["front_end"])
        settings = sidecar["decoder"]
        self._tokenizer = Tokenizer.from_file(str(Path(sidecar["_dir"]) / settings["tokenizer"]))
        self._prompt = list(settings["prompt"])
        self._eos = settings["eos_id"]
        self._suppress = np.asarray(settings["suppress_tokens"], np.int64)
        self._begin_suppress = np.asarray(settings["begin_suppress_tokens"], np.int64)
        self._max_length = settings["max_length"]
        self._window = int(self._front_end.chunk_s * SAMPLE_RATE)
        self._past_names = [info.name for info in decoder_with_past.inputs if info.name.startswith(PAST_PREFIX)]
        self.max_batch = profile_batch_limit(sidecar)

    def transcribe(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
        return self.transcribe_batch([audio], sample_rate=sample_rate)[0]

    def transcribe_batch(self, audios: list[np.ndarray], batch_size: int = 8, sample_rate: int = SAMPLE_RATE) -> list[str]:
        """Texts for several utterances, their 30 s windows decoded `batch_size` at a time (at most the
        engines' `max_batch`)."""
        batch_size = min(batch_size, self.max_batch or batch_size)
        windows, owners = [], []
        for index, audio in enumerate(audios):
            check_rate(audio, sample_rate)
            for start in range(0, max(len(audio), 1), self._window):
                windows.append(audio[start : start + self._window])
                owners.append(index)
        tokens = []
        for first in range(0, len(windows), batch_size):
            tokens += self.generate_batch(windows[first : first + batch_size])
        texts = [[] for _ in audios]
        for owner, window_tokens in zip(owners, tokens):
            text = self.decode_tokens(window_tokens)
            if text:
                texts[owner].append(text)
        return [" ".join(parts) for parts in texts]

    def decode_tokens(self, tokens: list[int]) -> str:
        return self._tokenizer.decode(tokens, skip_special_tokens=True).strip()

    def generate(self, audio: np.ndarray) -> list[int]:
        """Greedy token ids (prompt and end-of-text excluded) for one window of at most 30 s."""
        return self.generate_batch([audio])[0]

    def generate_batch(self, windows: list[np.ndarray]) -> list[list[int]]:
        """Greedy token ids for each window (at most 30 s each), decoded together.

        Only the features go to the device and only the logits come back: the encoder's output, the
        cross-attention K/V the first decoder step makes and the growing self-attention K/V stay where the
        engines wrote them, bound as the next graph's inputs (`run_device`)."""
        features = np.concatenate([self._front_end(window)[self._front_end.input_name] for window in windows])
        _, encoded = self.encoder.run_device({self._front_end.input_name: features})
        prompt = np.tile(np.asarray(self._prompt, np.int64), (len(windows), 1))
        logits, outputs = self.decoder.run_device({"input_ids": prompt, "encoder_hidden_states": encoded["last_hidden_state"]},
                                                  to_host=["logits"])
        past = {name: outputs[PRESENT_PREFIX + name[len(PAST_PREFIX):]] for name in self._past_names}
        tokens: list[list[int]] = [[] for _ in windows]
        done = np.zeros(len(windows), bool)
        for step in range(self._max_length - len(self._prompt)):
            scores = np.array(logits["logits"][:, -1], np.float32)
            scores[:, self._suppress] = -np.inf
            if step == 0:
                scores[:, self._begin_suppress] = -np.inf
            chosen = np.where(done, self._eos, scores.argmax(axis=-1))
            for index, token in enumerate(chosen):
                if not done[index]:
                    if token == self._eos:
                        done[index] = True
                    else:
                        tokens[index].append(int(token))
            if done.all():
                break
            logits, outputs = self.decoder_with_past.run_device({"input_ids": chosen[:, np.newaxis].astype(np.int64), **past},
                                                                to_host=["logits"])
            for name in self._past_names:
                present = PRESENT_PREFIX + name[len(PAST_PREFIX):]
                if present in outputs:  # self-attention cache grows; cross-attention cache stays
                    past[name] = outputs[present]
        return tokens

    def close(self) -> None:
        for engine in (self.encoder, self.decoder, self.decoder_with_past):
            engine.close()
