"""Model front ends: audio samples -> the named input arrays an engine takes.

They sit here, upstream of engines and runtime, because INT8 calibration and inference must
prepare inputs identically. Each front end is described by a small dict that travels in the engine's
manifest, so the runtime rebuilds it without transformers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from asr_engines.audio import SAMPLE_RATE, Samples


class FrontEnd(Protocol):
    """Turns 16 kHz mono audio into engine inputs."""

    def __call__(self, audio: np.ndarray) -> dict[str, np.ndarray]: ...

    def fixed_length(self, inputs: dict[str, np.ndarray], seconds: float) -> dict[str, np.ndarray]:
        """Crop or zero-pad the inputs to `seconds` of audio (calibration runs at one shape)."""
        ...

    def config(self) -> dict: ...


@dataclass(frozen=True)
class CTCFrontEnd:
    """wav2vec2-family input: raw samples, zero-mean unit-variance when the processor says `do_normalize`."""

    input_name: str = "input_values"
    do_normalize: bool = True

    def __call__(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        samples = np.asarray(audio, np.float32)
        if self.do_normalize:
            # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm: the 1e-7 matters for silence.
            samples = (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)
        return {self.input_name: samples[np.newaxis, :].astype(np.float32)}

    def fixed_length(self, inputs: dict[str, np.ndarray], seconds: float) -> dict[str, np.ndarray]:
        length = int(round(seconds * SAMPLE_RATE))
        values = inputs[self.input_name][:, :length]
        padded = np.zeros((values.shape[0], length), np.float32)
        padded[:, : values.shape[1]] = values
        return {self.input_name: padded}

    def config(self) -> dict:
        return {"kind": "ctc", "input_name": self.input_name, "do_normalize": self.do_normalize}


@dataclass(frozen=True)
class MoonshineFrontEnd:
    """Moonshine's input: raw samples as they are (its processor does not normalise) and an attention mask over
    them, ones on the audio and zeros on padding, so calibration's fixed-length inputs mask what they pad."""

    input_name: str = "input_values"
    mask_name: str = "attention_mask"

    def __call__(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        samples = np.asarray(audio, np.float32)[np.newaxis, :]
        return {self.input_name: samples, self.mask_name: np.ones(samples.shape, np.int64)}

    def fixed_length(self, inputs: dict[str, np.ndarray], seconds: float) -> dict[str, np.ndarray]:
        length = int(round(seconds * SAMPLE_RATE))
        values, mask = inputs[self.input_name][:, :length], inputs[self.mask_name][:, :length]
        padded, padded_mask = np.zeros((values.shape[0], length), np.float32), np.zeros((mask.shape[0], length), np.int64)
        padded[:, : values.shape[1]], padded_mask[:, : mask.shape[1]] = values, mask
        return {self.input_name: padded, self.mask_name: padded_mask}

    def config(self) -> dict:
        return {"kind": "moonshine", "input_name": self.input_name, "mask_name": self.mask_name}


#: Whisper's mel energy floor before log10, and the log10 mel of a frame that reads only zeros: that floor's.
MEL_FLOOR = 1e-10
_ZERO_FRAME_LOG10 = np.float32(np.log10(MEL_FLOOR))


def _hertz_to_mel(hertz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (as librosa and transformers)."""
    hertz = np.asarray(hertz, np.float64)
    mels = 3.0 * hertz / 200.0
    log_part = hertz >= 1000.0
    return np.where(log_part, 15.0 + np.log(np.maximum(hertz, 1e-10) / 1000.0) * (27.0 / np.log(6.4)), mels)


def _mel_to_hertz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, np.float64)
    return np.where(mels >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (mels - 15.0)), 200.0 * mels / 3.0)


def mel_filters(num_mel_bins: int, n_fft: int = 400, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """[n_fft/2 + 1, num_mel_bins] slaney-normalised triangular filters from 0 to sample_rate/2."""
    fft_freqs = np.linspace(0, sample_rate // 2, 1 + n_fft // 2)
    filter_freqs = _mel_to_hertz(np.linspace(_hertz_to_mel(0.0), _hertz_to_mel(sample_rate / 2), num_mel_bins + 2))
    slopes = filter_freqs[np.newaxis, :] - fft_freqs[:, np.newaxis]
    widths = np.diff(filter_freqs)
    triangles = np.maximum(0.0, np.minimum(-slopes[:, :-2] / widths[:-1], slopes[:, 2:] / widths[1:]))
    return triangles * (2.0 / (filter_freqs[2:] - filter_freqs[:-2]))[np.newaxis, :]


@dataclass(frozen=True)
class WhisperFrontEnd:
    """Whisper's log-mel input, as transformers' WhisperFeatureExtractor computes it: the audio zero-padded
    (or cut) to one 30 s window *before* the STFT (faster-whisper pads the log-mel afterwards instead; the
    two differ slightly), periodic Hann window, power spectrum, slaney mel, log10, 8-decade floor, scaled.
    `log_mel` does the same over a whole recording of any length, as transformers does for long-form."""

    input_name: str = "input_features"
    num_mel_bins: int = 80
    n_fft: int = 400
    hop_length: int = 160
    chunk_s: float = 30.0

    @property
    def window_frames(self) -> int:
        """Log-mel frames in one window (3000 for 30 s)."""
        return self.window_samples // self.hop_length

    @property
    def window_samples(self) -> int:
        """Samples in one window (480,000 for 30 s)."""
        return int(self.chunk_s * SAMPLE_RATE)

    def __call__(self, audio: np.ndarray, frames: int | None = None) -> dict[str, np.ndarray]:
        """The log-mel of one 30 s window, or only its first `frames` (a trimmed encoder's input) with the values
        the whole window has there. Past the audio the window is zeros, and a frame that reads only zeros sits at
        the floor, so only the frames that read audio are transformed (a 5 s utterance: 502 of 3,000) and the others
        filled: the values are the same, and so is the maximum the floor is taken from."""
        clip = np.asarray(audio, np.float64)[: self.window_samples]
        frames = self.window_frames if frames is None else min(frames, self.window_frames)
        # frame i reads samples i * hop - n_fft / 2 up to i * hop + n_fft / 2 - 1 (the STFT's centring)
        audible = min(self.window_frames, (clip.size + self.n_fft // 2 - 1) // self.hop_length + 1)
        waveform = np.zeros(min(self.window_samples, clip.size + self.n_fft), np.float64)
        waveform[: clip.size] = clip  # zeros past the audio, as in the window, up to where the frames read
        log_spec = np.full((self.num_mel_bins, max(frames, audible)), _ZERO_FRAME_LOG10, np.float32)
        log_spec[:, :audible] = self._log10_mel(waveform, 0, audible)
        return {self.input_name: _floored_and_scaled(log_spec[:, :frames], float(log_spec[:, :audible].max()))[np.newaxis]}

    def frames_in(self, samples: int) -> int:
        """Log-mel frames of a recording of `samples` (transformers drops the STFT's last frame)."""
        return samples // self.hop_length

    def log_mel(self, audio: Samples, first: int = 0, frames: int | None = None, top: float | None = None) -> np.ndarray:
        """[num_mel_bins, frames] float32 log-mel of frames [first, first + frames) of a recording (all of them by
        default), each exactly as the whole recording's STFT has it: the recording is reflected at its two ends,
        as transformers pads it. The 8-decade floor sits under `top`, the whole recording's highest log10 mel
        (`log10_top`); it is computed here when not given. Only the samples those frames read are touched, a block
        of frames at a time, so a window of a 3-hour `Recording` costs a window's memory."""
        total = self.frames_in(len(audio))
        frames = total - first if frames is None else frames
        log_spec = self._log10_mel(audio, first, frames)
        if top is None:  # the frames computed are the whole recording's (a short one): its top is theirs
            whole = first == 0 and frames == total
            top = float(log_spec.max()) if whole and frames else self.log10_top(audio)
        return _floored_and_scaled(log_spec, top)

    def log10_top(self, audio: Samples, block_frames: int = 3000) -> float:
        """The highest log10 mel over the whole recording, the reference of its 8-decade floor; read in blocks."""
        total = self.frames_in(len(audio))
        return max((float(self._log10_mel(audio, start, min(block_frames, total - start)).max())
                    for start in range(0, total, block_frames)), default=float(_ZERO_FRAME_LOG10))  # no frame

    def _log10_mel(self, audio: Samples, first: int, frames: int, block_frames: int = 3000) -> np.ndarray:
        """[num_mel_bins, frames] float32 log10 mel (floored at MEL_FLOOR only) of frames [first, first + frames)."""
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.n_fft) / self.n_fft)
        log_spec = np.empty((self.num_mel_bins, frames), np.float32)
        for start in range(0, frames, block_frames):
            count = min(block_frames, frames - start)
            samples = self._frame_samples(audio, first + start, count)
            stacked = np.lib.stride_tricks.sliding_window_view(samples, self.n_fft)[:: self.hop_length][:count]
            power = np.abs(np.fft.rfft(stacked * window, axis=-1)) ** 2
            mel = _cached_filters(self.num_mel_bins, self.n_fft).apply(power)
            log_spec[:, start : start + count] = np.log10(np.maximum(mel, MEL_FLOOR)).T
        return log_spec

    def _frame_samples(self, audio: Samples, first: int, frames: int) -> np.ndarray:
        """float64 samples frames [first, first + frames) read: those of the recording padded by n_fft // 2 on each
        side by reflection (numpy's "reflect"), without padding, or copying, the rest of it."""
        pad, length = self.n_fft // 2, len(audio)
        begin, end = first * self.hop_length - pad, (first + frames - 1) * self.hop_length + self.n_fft - pad
        if length <= pad:  # shorter than the padding: reflected more than once, as numpy does
            return np.pad(np.asarray(audio[:], np.float64), pad, mode="reflect")[begin + pad : end + pad]
        index = np.abs(np.arange(begin, end))
        index = np.where(index >= length, 2 * (length - 1) - index, index)
        low = int(index.min())
        return np.asarray(audio[low : int(index.max()) + 1], np.float64)[index - low]

    def fixed_length(self, inputs: dict[str, np.ndarray], seconds: float) -> dict[str, np.ndarray]:
        return inputs  # always one 30 s window

    def config(self) -> dict:
        return {"kind": "whisper", "input_name": self.input_name, "num_mel_bins": self.num_mel_bins,
                "n_fft": self.n_fft, "hop_length": self.hop_length, "chunk_s": self.chunk_s}


def _floored_and_scaled(log_spec: np.ndarray, top: float) -> np.ndarray:
    """Whisper's log-mel from log10 mel: floored 8 decades under `top` (the recording's highest), then scaled."""
    return (np.maximum(log_spec, top - 8.0) + 4.0) / 4.0


@dataclass(frozen=True)
class SparseFilterbank:
    """mel_filters as its nonzero weights: each triangle covers a few FFT bins (391 of 16,080 weights for 80 bins).

    Applied without BLAS, on purpose: numpy's OpenBLAS threads spin for a while after each call, and on two
    cores they took one from the encoder that runs next (tiny.en's encoder 4.2 s -> 6.1 s over the 70 bundled
    utterances: docs/results/2026-12-06-front-end-threads.md); forty times fewer products, too."""

    bins: np.ndarray  # FFT bin of each nonzero weight, grouped by mel bin
    weights: np.ndarray
    starts: np.ndarray  # where each mel bin's group begins
    empty: np.ndarray  # mel bins that cover no FFT bin (their energy is 0)

    @classmethod
    def of(cls, filters: np.ndarray) -> SparseFilterbank:
        mel_bins, fft_bins = np.nonzero(filters.T)
        counts = np.bincount(mel_bins, minlength=filters.shape[1])
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return cls(fft_bins, filters[fft_bins, mel_bins], np.minimum(starts, max(len(fft_bins) - 1, 0)), counts == 0)

    def apply(self, power: np.ndarray) -> np.ndarray:
        """[frames, mel bins]: power [frames, FFT bins] @ the filters."""
        mel = np.add.reduceat(power[:, self.bins] * self.weights, self.starts, axis=1)
        mel[:, self.empty] = 0.0
        return mel


@functools.cache
def _cached_filters(num_mel_bins: int, n_fft: int) -> SparseFilterbank:
    return SparseFilterbank.of(mel_filters(num_mel_bins, n_fft))


def front_end_from_config(config: dict) -> FrontEnd:
    """Rebuild a front end from the dict its `config()` wrote into a manifest."""
    kinds = {"ctc": CTCFrontEnd, "whisper": WhisperFrontEnd, "moonshine": MoonshineFrontEnd}
    settings = dict(config)
    kind = settings.pop("kind")
    if kind not in kinds:
        raise ValueError(f"unknown front end {kind!r}; this runtime knows {sorted(kinds)}")
    return kinds[kind](**settings)
