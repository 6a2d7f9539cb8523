"""Whisper from three engines (encoder, decoder, decoder with KV cache): greedy decoding, as transformers'
`generate` does it with num_beams=1 — the model's prompt, suppressed tokens, tokens suppressed at the first
step, stop at end-of-text or max_length.

Up to 30 s: one window, the prompt with `<|notimestamps|>` (transformers' short form). Several such
utterances can run as one batch (`transcribe_batch`): every sequence starts with the same prompt and advances
one token per step, so no padding enters the decoder and each gets the tokens it would get alone (but for
int8 decoders that quantize activations per call, over the batch); finished ones are fed end-of-text until
all are done. Over 30 s: long-form as transformers' `generate` does it on a
long input — the log-mel of the whole recording, 30 s windows decoded with timestamps, each next window
starting where the last complete segment ended (whisper_timestamps.py).

`trim_margin_s` (ONNX Runtime engines): a short-form batch runs the encoder on the frames its longest
recording covers plus that margin, not on the whole 30 s window. Faster in proportion. On noisy audio a
trimmed window now and then loops (one sentence over and over up to max_length) where the whole window does
not; a window whose text loops (openai-whisper's test: zlib compression ratio over 2.4) or that reaches
max_length is decoded again on the whole window. Unless the caller names a margin (or None: the whole
window), the encoder's precision decides (DEFAULT_TRIM_MARGIN_S); docs/results/2026-12-02-whisper-trim.md has its cost."""

from __future__ import annotations

import zlib
from typing import Literal

import numpy as np

from asr_engines.audio import SAMPLE_RATE, check_rate
from asr_engines.features import front_end_from_config
from asr_engines.manifest import EngineManifest
from asr_engines.runtime.engine import ClosedOnExit, Engine
from asr_engines.runtime.streaming import SegmentedStream, StreamOptions
from asr_engines.runtime.whisper_timestamps import TimestampRules
from asr_engines.variants import Precision

PAST_PREFIX, PRESENT_PREFIX = "past_key_values.", "present."
#: openai-whisper's `compression_ratio_threshold`: text that zlib shrinks more than this repeats itself.
LOOP_COMPRESSION_RATIO = 2.4
#: A trim margin in seconds, None for the whole 30 s window, or PRECISION_DEFAULT.
TrimMargin = float | Literal["default"] | None
PRECISION_DEFAULT: TrimMargin = "default"
#: The margin an encoder of each precision trims with unless told otherwise: a margin where it kept WER within 0.5
#: points of the whole window on clean and on noisy speech alike, the whole window where it did not
#: (docs/results/2026-12-02-whisper-trim.md). ONNX Runtime's CPU int8 engines keep Whisper's encoder fp32
#: (asr_engines/families.py), so they trim. Only encoders built to trim (ONNX Runtime) do; TensorRT plans keep the
#: whole window.
DEFAULT_TRIM_MARGIN_S: dict[Precision, float | None] = {Precision.FP32: 8.0, Precision.FP16: 8.0, Precision.INT8: None}


def trim_margin(requested: TrimMargin, manifest: EngineManifest) -> float | None:
    """The margin a recognizer of this engine runs with: its encoder's precision's default unless one is named
    (the whole window where the encoder cannot trim), else the named one, checked."""
    trims = bool(manifest.build["encoder"].get("sliced_positions"))
    if requested == PRECISION_DEFAULT:
        return DEFAULT_TRIM_MARGIN_S.get(manifest.graph_variant("encoder").precision) if trims else None
    if requested is not None and not trims:
        raise ValueError(f"{manifest.engine}: its encoder takes only whole 30 s windows (TensorRT plans, and "
                         "ONNX Runtime engines built before encoder trimming); leave the margin to its default, or rebuild")
    if requested is not None and requested < 0:
        raise ValueError(f"trim margin must be at least 0 s, not {requested}")
    return requested


def parse_trim_margin(text: str) -> TrimMargin:
    """Command-line form: SECONDS, `off` (the whole window) or `default` (the precision's)."""
    if text == "off":
        return None
    if text == PRECISION_DEFAULT:
        return PRECISION_DEFAULT
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"trim margin: SECONDS, off or default, not {text!r}") from None


def compression_ratio(text: str) -> float:
    """Bytes of `text` over bytes of its zlib compression (speech reads about 1; a loop far above 2.4)."""
    data = text.encode()
    return len(data) / len(zlib.compress(data)) if data else 0.0


def profile_batch_limit(manifest: EngineManifest) -> int | None:
    """The largest batch every graph's shape profile takes (TensorRT plans); None where any batch runs."""
    limits = [shapes["max"][0] for build in manifest.build.values() for shapes in (build.get("profile") or {}).values()]
    return min(limits) if limits else None


class WhisperRecognizer(ClosedOnExit):
    """Transcribes 16 kHz mono float32 audio with a Whisper engine set and its tokenizer."""

    def __init__(self, encoder: Engine, decoder: Engine, decoder_with_past: Engine, manifest: EngineManifest,
                 trim_margin_s: TrimMargin = PRECISION_DEFAULT):
        from tokenizers import Tokenizer

        self.trim_margin_s = trim_margin(trim_margin_s, manifest)
        self.whole_window_retries = 0  # trimmed windows decoded again on the whole window (they looped)

        self.encoder, self.decoder, self.decoder_with_past = encoder, decoder, decoder_with_past
        self.manifest = manifest
        self.name = manifest.engine
        self.backend, self.device = encoder.backend, encoder.device
        self.precision, self.variant = manifest.precision, manifest.variant
        self._front_end = front_end_from_config(manifest.front_end)
        settings = manifest.decoder
        self._tokenizer = Tokenizer.from_file(str(manifest.folder / settings["tokenizer"]))
        self._prompt = list(settings["prompt"])
        self._eos = settings["eos_id"]
        self._suppress = np.asarray(settings["suppress_tokens"], np.int64)
        self._begin_suppress = np.asarray(settings["begin_suppress_tokens"], np.int64)
        self._max_length = settings["max_length"]
        self._timestamp_prompt = list(settings["timestamp_prompt"])
        self._timestamps = TimestampRules(settings["no_timestamps_id"] + 1, self._eos, settings["no_timestamps_id"],
                                          settings["max_initial_timestamp_index"])
        self._window = int(self._front_end.chunk_s * SAMPLE_RATE)
        self._past_names = [info.name for info in decoder_with_past.inputs if info.name.startswith(PAST_PREFIX)]
        self.max_batch = profile_batch_limit(manifest)

    def transcribe(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
        return self.transcribe_batch([audio], sample_rate=sample_rate)[0]

    def stream(self, options: StreamOptions | None = None) -> SegmentedStream:
        """A live stream decoded segment by segment (streaming.py)."""
        return SegmentedStream(self.transcribe, options or StreamOptions())

    def decoding(self) -> dict:
        return {"trim_margin_s": self.trim_margin_s, "whole_window_retries": self.whole_window_retries}

    def transcribe_batch(self, audios: list[np.ndarray], batch_size: int = 8, sample_rate: int = SAMPLE_RATE) -> list[str]:
        """Texts for several recordings: those up to 30 s decoded `batch_size` at a time (at most the engines'
        `max_batch`), longer ones long-form, one after another."""
        batch_size = min(batch_size, self.max_batch or batch_size)
        for audio in audios:
            check_rate(audio, sample_rate)
        texts = [""] * len(audios)
        short = [index for index, audio in enumerate(audios) if len(audio) <= self._window]
        for first in range(0, len(short), batch_size):
            batch = short[first : first + batch_size]
            for index, tokens in zip(batch, self.generate_batch([audios[index] for index in batch])):
                texts[index] = self.decode_tokens(tokens)
        for index, audio in enumerate(audios):
            if len(audio) > self._window:
                texts[index] = self.decode_tokens(self.generate_long(audio))
        return texts

    def decode_tokens(self, tokens: list[int]) -> str:
        return self._tokenizer.decode(tokens, skip_special_tokens=True).strip()

    def generate(self, audio: np.ndarray) -> list[int]:
        """Greedy token ids (prompt and end-of-text excluded) for one window of at most 30 s."""
        return self.generate_batch([audio])[0]

    def generate_batch(self, windows: list[np.ndarray]) -> list[list[int]]:
        """Greedy token ids for each window (at most 30 s each), decoded together, without timestamps."""
        if self.trim_margin_s is None:
            return self._decode(self._features(windows), self._prompt)
        tokens = self._decode(self._features(windows, self._trimmed_frames(max(map(len, windows)))), self._prompt)
        looped = [index for index, sequence in enumerate(tokens) if self._loops(sequence)]
        if looped:
            self.whole_window_retries += len(looped)
            for index, sequence in zip(looped, self._decode(self._features([windows[i] for i in looped]), self._prompt)):
                tokens[index] = sequence
        return tokens

    def _features(self, windows: list[np.ndarray], frames: int | None = None) -> np.ndarray:
        return np.concatenate([self._front_end(window, frames)[self._front_end.input_name] for window in windows])

    def _loops(self, tokens: list[int]) -> bool:
        return (len(tokens) >= self._max_length - len(self._prompt)
                or compression_ratio(self.decode_tokens(tokens)) > LOOP_COMPRESSION_RATIO)

    def _trimmed_frames(self, samples: int) -> int:
        """Log-mel frames for `samples` of audio plus the margin, even (the encoder's convolution halves
        them), at most a whole window."""
        frames = int(np.ceil((samples / SAMPLE_RATE + self.trim_margin_s) * SAMPLE_RATE / self._front_end.hop_length))
        return min(self._front_end.window_frames, frames + frames % 2)

    def generate_long(self, audio: np.ndarray) -> list[int]:
        """Text token ids of a recording of any length, long-form: 30 s windows of its log-mel decoded with
        timestamps, each next window starting at the end of the last complete segment."""
        mel = self._front_end.log_mel(audio)
        window = self._front_end.window_frames
        tokens, seek = [], 0
        while seek < mel.shape[1]:
            frames = min(window, mel.shape[1] - seek)
            segment = np.zeros((1, mel.shape[0], window), np.float32)  # zero-padded as transformers pads the last one
            segment[0, :, :frames] = mel[:, seek : seek + frames]
            (window_tokens,) = self._decode(segment, self._timestamp_prompt, self._timestamps)
            text, advance = self._timestamps.segments(window_tokens, frames)
            tokens += text
            seek += advance if advance > 0 else frames
        return tokens

    def _decode(self, features: np.ndarray, prompt: list[int], timestamps: TimestampRules | None = None) -> list[list[int]]:
        """Greedy decoding of a batch of 30 s log-mel windows from `prompt`.

        Only the features go to the device and only the logits come back: the encoder's output, the
        cross-attention K/V the first decoder step makes and the growing self-attention K/V stay where the
        engines wrote them, bound as the next graph's inputs (`run_device`)."""
        _, encoded = self.encoder.run_device({self._front_end.input_name: features})
        prompt_ids = np.tile(np.asarray(prompt, np.int64), (len(features), 1))
        logits, outputs = self.decoder.run_device({"input_ids": prompt_ids, "encoder_hidden_states": encoded["last_hidden_state"]},
                                                  to_host=["logits"])
        past = {name: outputs[PRESENT_PREFIX + name[len(PAST_PREFIX):]] for name in self._past_names}
        tokens: list[list[int]] = [[] for _ in features]
        done = np.zeros(len(features), bool)
        for step in range(self._max_length - len(prompt)):
            scores = np.array(logits["logits"][:, -1], np.float32)
            if step == 0:
                scores[:, self._begin_suppress] = -np.inf
            scores[:, self._suppress] = -np.inf
            if timestamps is not None:
                timestamps.apply(scores, tokens)
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
