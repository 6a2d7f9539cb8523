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
window), the engine's build decided it by measurement (the manifest's `decoder.trim`, measure/choices.py);
engines built before that trim by their encoder's precision (DEFAULT_TRIM_MARGIN_S, tuned on tiny.en:
docs/results/2026-12-02-whisper-trim.md).

No speech: a window whose no-speech probability is over 0.6 and whose tokens' average log-probability is under -1
(openai-whisper's thresholds and rule), or whose no-speech probability is over 0.9 whatever its tokens, gives no
text: silence and noise alone would otherwise come out as "you" or "." (`recognize` says so, with both figures).
The second rule is ours: tiny.en on digital silence is sure there is no speech (0.95-0.99) yet writes a confident
"you"; speech never came near (docs/results/2026-12-05-gpu-proof.md has the figures).

Engines built with the greedy head (engines/passes/token_head.py) choose each token on the device and send back
its id, its log-probability and, once, the no-speech log-probability; long-form windows, whose timestamp rules
depend on the tokens so far, read the logits. ONNX Runtime's fp32 engines give their KV-cache decoder the
screened head (engines/passes/screened_head.py: fp32's tokens from an int8 screen of the vocabulary), which
computes the full logits only on the steps that ask for them (`logits_wanted`)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

from asr_engines.audio import SAMPLE_RATE, Recording, Samples, checked_samples
from asr_engines.families import LOGITS_WANTED, NEXT_TOKEN, NEXT_TOKEN_LOGPROB, NO_SPEECH_LOGPROB
from asr_engines.features import front_end_from_config
from asr_engines.manifest import EngineManifest
from asr_engines.runtime.engine import ClosedOnExit, Engine, InFlight
from asr_engines.runtime.streaming import SegmentedStream, StreamOptions
from asr_engines.runtime.whisper_prompt import PromptRules
from asr_engines.runtime.whisper_timestamps import TimestampRules
from asr_engines.variants import Precision

PAST_PREFIX, PRESENT_PREFIX = "past_key_values.", "present."
#: openai-whisper's `compression_ratio_threshold`: text that zlib shrinks more than this repeats itself.
LOOP_COMPRESSION_RATIO = 2.4
#: openai-whisper's `no_speech_threshold` and `logprob_threshold`: a window over the first and under the second is silence.
NO_SPEECH_THRESHOLD, LOGPROB_THRESHOLD = 0.6, -1.0
#: Over this, a window is silence whatever its tokens' log-probability (tiny.en: speech at most 0.37, silence 0.95+).
SURE_NO_SPEECH = 0.9
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
    """The margin a recognizer of this engine runs with: unless one is named, the one its build measured and kept,
    else its encoder's precision's default (the whole window where the encoder cannot trim); else the named one,
    checked."""
    trims = bool(manifest.build["encoder"].get("sliced_positions"))
    if requested == PRECISION_DEFAULT:
        decided = manifest.decoder.get("trim") or {}
        if trims and decided.get("judged"):
            return decided["margin_s"]
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


@dataclass(frozen=True)
class Decoded:
    """One window's greedy tokens (prompt and end-of-text excluded), their average log-probability (end-of-text
    included, as openai-whisper counts it) and the no-speech probability at the start of the transcript."""

    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    language: int | None = None  # the language token it was decoded with, where the model has languages
    language_prob: float | None = None  # that language's probability, where it was read off the audio

    @property
    def no_speech(self) -> bool:
        return self.no_speech_prob > SURE_NO_SPEECH or (self.no_speech_prob > NO_SPEECH_THRESHOLD
                                                         and self.avg_logprob < LOGPROB_THRESHOLD)


@dataclass(frozen=True)
class Recognition:
    """`WhisperRecognizer.recognize`'s result: the text ("" where no speech was found) and why."""

    text: str
    no_speech: bool  # every window was judged silence or noise
    no_speech_prob: float  # the highest over the windows
    avg_logprob: float  # over the windows' tokens
    language: str | None = None  # the language it was transcribed as (`en`), on a multilingual model
    language_probability: float | None = None  # where that language was detected: its probability


def _spoken(windows: list[Decoded]) -> list[int]:
    """The tokens of the windows that hold speech, in order."""
    return [token for window in windows if not window.no_speech for token in window.tokens]


def _log_softmax_at(scores: np.ndarray, index: np.ndarray) -> np.ndarray:
    """log softmax(scores)[row, index[row]] for each row, computed stably."""
    top = scores.max(axis=-1)
    norm = top + np.log(np.exp(scores - top[:, np.newaxis]).sum(axis=-1))
    return scores[np.arange(len(scores)), index] - norm


def profile_batch_limit(manifest: EngineManifest) -> int | None:
    """The largest batch every graph's shape profile takes (TensorRT plans); None where any batch runs."""
    limits = [shapes["max"][0] for build in manifest.build.values() for shapes in (build.get("profile") or {}).values()]
    return min(limits) if limits else None


class WhisperRecognizer(ClosedOnExit):
    """Transcribes 16 kHz mono float32 audio with a Whisper engine set and its tokenizer."""

    def __init__(self, encoder: Engine, decoder: Engine, decoder_with_past: Engine, manifest: EngineManifest,
                 trim_margin_s: TrimMargin = PRECISION_DEFAULT, language: str | None = None, task: str | None = None):
        """`language` (a code, `fr`) and `task` (`transcribe`, `translate`): as transformers' `generate` takes
        them (whisper_prompt.py); on a multilingual model, no language means it is detected per recording."""
        from tokenizers import Tokenizer

        self.trim_margin_s = trim_margin(trim_margin_s, manifest)
        self.whole_window_retries = 0  # trimmed windows decoded again on the whole window (they looped)
        self.windows_without_speech = 0  # windows whose text was dropped as silence or noise

        self.encoder, self.decoder, self.decoder_with_past = encoder, decoder, decoder_with_past
        self.manifest = manifest
        self.name = manifest.engine
        self.backend, self.device = encoder.backend, encoder.device
        self.precision, self.variant = manifest.precision, manifest.variant
        self._front_end = front_end_from_config(manifest.front_end)
        settings = manifest.decoder
        self._tokenizer = Tokenizer.from_file(str(manifest.folder / settings["tokenizer"]))
        self._prompts = PromptRules.from_settings(settings)
        self.language, self.task = self._prompts.checked(language, task)
        self._detects = self._prompts.needs_detection(self.language, self.task)
        self._eos = settings["eos_id"]
        self._suppress = np.asarray(settings["suppress_tokens"], np.int64)
        self._begin_suppress = np.asarray(settings["begin_suppress_tokens"], np.int64)
        self._max_length = settings["max_length"]
        self._timestamps = TimestampRules(settings["no_timestamps_id"] + 1, self._eos, settings["no_timestamps_id"],
                                          settings["max_initial_timestamp_index"])
        self._window = self._front_end.window_samples
        self._past_names = [info.name for info in decoder_with_past.inputs if info.name.startswith(PAST_PREFIX)]
        self._screened = LOGITS_WANTED in {info.name for info in decoder_with_past.inputs}
        self._no_speech_id = settings["no_timestamps_id"] - 1  # <|nospeech|>, <|nocaptions|> in English-only vocabularies
        self.token_head = all(NEXT_TOKEN in {info.name for info in engine.outputs} for engine in (decoder, decoder_with_past))
        self.max_batch = profile_batch_limit(manifest)
        self._in_flight = InFlight(self.name)

    def transcribe(self, audio: np.ndarray | Recording, sample_rate: int = SAMPLE_RATE) -> str:
        return self.transcribe_batch([audio], sample_rate=sample_rate)[0]

    def stream(self, options: StreamOptions | None = None) -> SegmentedStream:
        """A live stream decoded segment by segment (streaming.py)."""
        return SegmentedStream(self.transcribe, options or StreamOptions())

    def decoding(self) -> dict:
        decided = self.manifest.decoder.get("trim") or {}
        return {"trim_margin_s": self.trim_margin_s, "trim_decided": {key: decided.get(key) for key in (
                    "judged", "margin_s", "cost_clean", "cost_noisy", "note") if key in decided} or None,
                "whole_window_retries": self.whole_window_retries,
                "windows_without_speech": self.windows_without_speech, "token_head": self.token_head}

    def recognize(self, audio: np.ndarray | Recording, sample_rate: int = SAMPLE_RATE) -> Recognition:
        """The text of one recording, with the no-speech figures it was judged by."""
        audio = checked_samples(audio, sample_rate)
        windows = self.decode_batch([audio[:]]) if len(audio) <= self._window else self.decode_long(audio)
        return Recognition(self.decode_tokens(_spoken(windows)), all(window.no_speech for window in windows),
                           max(window.no_speech_prob for window in windows),
                           float(np.mean([window.avg_logprob for window in windows])),
                           self._prompts.code(windows[0].language) if windows[0].language is not None else None,
                           windows[0].language_prob)

    def transcribe_batch(self, audios: list[np.ndarray], batch_size: int = 8, sample_rate: int = SAMPLE_RATE) -> list[str]:
        """Texts for several recordings: those up to 30 s decoded `batch_size` at a time (at most the engines'
        `max_batch`), longer ones long-form, one after another; "" for those without speech."""
        batch_size = min(batch_size, self.max_batch or batch_size)
        audios = [checked_samples(audio, sample_rate) for audio in audios]
        texts = [""] * len(audios)
        short = [index for index, audio in enumerate(audios) if len(audio) <= self._window]
        for first in range(0, len(short), batch_size):
            batch = short[first : first + batch_size]
            for index, window in zip(batch, self.decode_batch([audios[index][:] for index in batch])):
                texts[index] = self.decode_tokens(_spoken([window]))
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
        return [window.tokens for window in self.decode_batch(windows)]

    def decode_batch(self, windows: list[np.ndarray]) -> list[Decoded]:
        """Each window (at most 30 s) decoded greedily, together, without timestamps; windows without speech counted."""
        if self.trim_margin_s is None:
            decoded = self._decode(self._features(windows))
        else:
            decoded = self._decode(self._features(windows, self._trimmed_frames(max(map(len, windows)))))
            looped = [index for index, window in enumerate(decoded) if self._loops(window.tokens)]
            if looped:
                self.whole_window_retries += len(looped)
                for index, window in zip(looped, self._decode(self._features([windows[i] for i in looped]))):
                    decoded[index] = window
        self.windows_without_speech += sum(window.no_speech for window in decoded)
        return decoded

    def _features(self, windows: list[np.ndarray], frames: int | None = None) -> np.ndarray:
        return np.concatenate([self._front_end(window, frames)[self._front_end.input_name] for window in windows])

    def _loops(self, tokens: list[int]) -> bool:
        return (len(tokens) >= self._max_length - self._prompts.length(self.language, self.task, timestamps=False)
                or compression_ratio(self.decode_tokens(tokens)) > LOOP_COMPRESSION_RATIO)

    def _trimmed_frames(self, samples: int) -> int:
        """Log-mel frames for `samples` of audio plus the margin, even (the encoder's convolution halves
        them), at most a whole window."""
        frames = int(np.ceil((samples / SAMPLE_RATE + self.trim_margin_s) * SAMPLE_RATE / self._front_end.hop_length))
        return min(self._front_end.window_frames, frames + frames % 2)

    def generate_long(self, audio: Samples) -> list[int]:
        """Text token ids of a recording of any length, long-form (windows without speech give none)."""
        return _spoken(self.decode_long(audio))

    def decode_long(self, audio: Samples) -> list[Decoded]:
        """A recording of any length, long-form: 30 s windows of its log-mel decoded with timestamps, each next
        window starting at the end of the last complete segment (a window without speech: at its end). Each
        window's text tokens, timestamps removed. A language read off the audio is read off the first window, as
        transformers does."""
        front_end, window = self._front_end, self._front_end.window_frames
        top, total = front_end.log10_top(audio), front_end.frames_in(len(audio))  # one pass for the floor's reference
        decoded: list[Decoded] = []
        seek = 0
        while seek < total:
            frames = min(window, total - seek)
            segment = np.zeros((1, front_end.num_mel_bins, window), np.float32)  # zero-padded as transformers pads the last one
            segment[0, :, :frames] = front_end.log_mel(audio, seek, frames, top)  # this window's frames only
            first = decoded[0] if decoded else None
            (result,) = self._decode(segment, self._timestamps, (first.language, first.language_prob) if first else None)
            text, advance = self._timestamps.segments(result.tokens, frames)
            decoded.append(Decoded(text, result.avg_logprob, result.no_speech_prob, result.language, result.language_prob))
            self.windows_without_speech += result.no_speech
            seek += advance if advance > 0 and not result.no_speech else frames
        return decoded

    def _choose(self, host: dict[str, np.ndarray], step: int, tokens: list[list[int]],
                timestamps: TimestampRules | None) -> tuple[np.ndarray, np.ndarray]:
        """Each sequence's next token and its log-probability: as the greedy head chose them on the device, or
        from the logits with the same masks (and the timestamp rules) applied here."""
        if NEXT_TOKEN in host:
            return host[NEXT_TOKEN][:, -1].astype(np.int64), host[NEXT_TOKEN_LOGPROB][:, -1]
        scores = np.array(host["logits"][:, -1], np.float32)
        if step == 0:
            scores[:, self._begin_suppress] = -np.inf
        scores[:, self._suppress] = -np.inf
        if timestamps is not None:
            timestamps.apply(scores, tokens)
        chosen = scores.argmax(axis=-1)
        return chosen, _log_softmax_at(scores, chosen)

    def _decode(self, features: np.ndarray, timestamps: TimestampRules | None = None,
                language: tuple[int | None, float | None] | None = None) -> list[Decoded]:
        """Greedy decoding of a batch of 30 s log-mel windows, each from its prompt (whisper_prompt.py): `language`,
        the token and probability a first window was given, else the recognizer's or the one read off each window.

        Only the features go to the device, and only what choosing the next token needs comes back: its id and
        log-probability where the decoders have the greedy head and no timestamp rule applies, else the logits.
        The encoder's output, the cross-attention K/V the first decoder step makes and the growing self-attention
        K/V stay where the engines wrote them, bound as the next graph's inputs (`run_device`)."""
        with self._in_flight.call():
            return self._decode_greedily(features, timestamps, language)

    def _languages(self, encoded: object, rows: int) -> tuple[list[int | None], list[float | None]]:
        """Each row's language token and its probability: read off the audio by one decoder step from the start
        token where the model must detect it, else the one asked for (no probability)."""
        if not self._detects:
            asked = self._prompts.language_id(self.language) if self.language else None
            return [asked] * rows, [None] * rows
        start = np.full((rows, 1), self._prompts.start_id, np.int64)
        host, _ = self.decoder.run_device({"input_ids": start, "encoder_hidden_states": encoded}, to_host=["logits"])
        ids, probabilities = self._prompts.detect(np.asarray(host["logits"][:, -1]))
        return [int(token) for token in ids], [float(value) for value in probabilities]

    def _decode_greedily(self, features: np.ndarray, timestamps: TimestampRules | None,
                         language: tuple[int | None, float | None] | None) -> list[Decoded]:
        head = self.token_head and timestamps is None
        _, encoded = self.encoder.run_device({self._front_end.input_name: features})
        hidden = encoded["last_hidden_state"]
        languages, probabilities = ([language[0]] * len(features), [language[1]] * len(features)) if language else \
            self._languages(hidden, len(features))
        prompt_ids = np.asarray([self._prompts.prompt(self.language, self.task, token if self._detects else None,
                                                      timestamps is not None) for token in languages], np.int64)
        host, outputs = self.decoder.run_device({"input_ids": prompt_ids, "encoder_hidden_states": hidden},
                                                to_host=[NEXT_TOKEN, NEXT_TOKEN_LOGPROB, NO_SPEECH_LOGPROB] if head else ["logits"])
        no_speech_prob = (np.exp(host[NO_SPEECH_LOGPROB][:, -1]) if head else
                          np.exp(_log_softmax_at(np.asarray(host["logits"][:, 0], np.float32), np.full(len(features), self._no_speech_id))))
        past = {name: outputs[PRESENT_PREFIX + name[len(PAST_PREFIX):]] for name in self._past_names}
        tokens: list[list[int]] = [[] for _ in features]
        logprobs = np.zeros(len(features))
        done = np.zeros(len(features), bool)
        wanted = {LOGITS_WANTED: np.array(not head)} if self._screened else {}
        for step in range(self._max_length - prompt_ids.shape[1]):
            chosen, logprob = self._choose(host, step, tokens, timestamps)
            chosen = np.where(done, self._eos, chosen)
            logprobs += np.where(done, 0.0, logprob)
            for index, token in enumerate(chosen):
                if not done[index]:
                    if token == self._eos:
                        done[index] = True
                    else:
                        tokens[index].append(int(token))
            if done.all():
                break
            host, outputs = self.decoder_with_past.run_device({"input_ids": chosen[:, np.newaxis].astype(np.int64), **past, **wanted},
                                                              to_host=[NEXT_TOKEN, NEXT_TOKEN_LOGPROB] if head else ["logits"])
            for name in self._past_names:
                present = PRESENT_PREFIX + name[len(PAST_PREFIX):]
                if present in outputs:  # self-attention cache grows; cross-attention cache stays
                    past[name] = outputs[present]
        return [Decoded(sequence, float(logprobs[index] / (len(sequence) + 1)), float(no_speech_prob[index]),
                        languages[index], probabilities[index]) for index, sequence in enumerate(tokens)]

    def close(self) -> None:
        """Wait for transcriptions in flight, then free the engines; transcribing after it raises EngineError."""
        if self._in_flight.close():
            for engine in (self.encoder, self.decoder, self.decoder_with_past):
                engine.close()
