"""The streaming recognizer and its VAD: chunk sizes do not change the result, committed text only grows, the
engine's work per audio second does not grow with the stream, silence and noise cost nothing and say nothing."""

from __future__ import annotations

import numpy as np
import pytest

from asr_engines import load_recognizer
from asr_engines.audio import SAMPLE_RATE, AudioError
from asr_engines.runtime.streaming import SegmentedStream, StreamOptions
from asr_engines.runtime.vad import SpeechEnd, SpeechSegmenter, SpeechStart, VadOptions


def study_noise(seconds: float, seed: int = 0) -> np.ndarray:
    """The study's noise alone: uniform white noise of peak 0.1 (calibration/noise.py)."""
    return np.random.default_rng(seed).uniform(-0.1, 0.1, int(seconds * SAMPLE_RATE)).astype(np.float32)


def feed(stream, audio: np.ndarray, sizes) -> list[str]:
    """Feed `audio` in pieces of the given sizes (cycled); the committed text after each."""
    committed, start, index = [], 0, 0
    while start < len(audio):
        size = sizes[index % len(sizes)]
        stream.accept(audio[start : start + size])
        committed.append(stream.committed())
        start, index = start + size, index + 1
    return committed


@pytest.fixture(scope="module")
def two_utterances(utterances) -> np.ndarray:
    """Two utterances with 1.5 s of silence between and after them: two segments."""
    gap = np.zeros(int(1.5 * SAMPLE_RATE), np.float32)
    return np.concatenate([utterances[0].load(), gap, utterances[1].load(), gap])


def test_vad_marks_speech_and_ignores_silence_and_noise(two_utterances):
    segmenter = SpeechSegmenter()
    boundaries = list(segmenter.accept(two_utterances))
    assert [type(b) for b in boundaries] == [SpeechStart, SpeechEnd, SpeechStart, SpeechEnd]
    assert all(b.is_speech for b in boundaries if isinstance(b, SpeechEnd))
    assert boundaries[0].sample < 0.5 * SAMPLE_RATE  # the utterance starts within half a second
    for quiet in (np.zeros(5 * SAMPLE_RATE, np.float32), study_noise(10)):
        assert list(SpeechSegmenter().accept(quiet)) == []


def test_vad_endpoint_waits_for_the_trailing_silence(utterances):
    stream = SegmentedStream(lambda audio: "words", StreamOptions())
    stream.accept(utterances[0].load())
    wanted = stream.segmenter.silence_s() + 0.5  # the recording ends with some silence of its own
    assert not stream.endpoint(wanted)
    stream.accept(np.zeros(int(0.25 * SAMPLE_RATE), np.float32))
    assert not stream.endpoint(wanted)
    stream.accept(np.zeros(int(0.3 * SAMPLE_RATE), np.float32))
    assert stream.endpoint(wanted)


def test_vad_options_are_checked():
    with pytest.raises(ValueError, match="release <= threshold"):
        VadOptions(threshold=0.3, release=0.5)
    with pytest.raises(ValueError, match="max_segment_s"):
        StreamOptions(max_segment_s=40)


def test_segmented_stream_decodes_each_segment_once(two_utterances):
    decoded = []
    stream = SegmentedStream(lambda audio: decoded.append(len(audio)) or f"segment {len(decoded)}", StreamOptions())
    committed = feed(stream, two_utterances, [1024])
    transcript = stream.finish()
    assert transcript.text == "segment 1 segment 2"
    assert len(decoded) == 2 and sum(decoded) < len(two_utterances)  # speech only, once
    assert [s.text for s in transcript.segments] == ["segment 1", "segment 2"]
    assert transcript.segments[0].end < transcript.segments[1].start
    assert all(later.startswith(earlier) for earlier, later in zip(committed, committed[1:]))  # never rewritten
    assert committed[len(committed) // 2] == "segment 1"  # the first was final while the second was spoken


def test_a_segment_that_paused_is_final_without_another_decode(utterances):
    decoded = []
    stream = SegmentedStream(lambda audio: decoded.append(len(audio)) or "said", StreamOptions())
    feed(stream, np.concatenate([utterances[0].load(), np.zeros(SAMPLE_RATE // 2, np.float32)]), [1024])
    assert stream.segmenter.in_speech and len(decoded) == 1  # decoded in the pause, before the VAD closed it
    assert stream.finish().text == "said" and len(decoded) == 1


@pytest.mark.slow
def test_segmented_stream_cost_and_memory_do_not_grow_with_its_length(utterances):
    """Ten minutes of speech against 30 s: the samples decoded per audio second within 1.5x, the audio held bounded."""
    speech = np.concatenate([u.load() for u in utterances[:8]])

    def run(seconds: float) -> tuple[float, int]:
        decoded, held = [0], [0]
        stream = SegmentedStream(lambda audio: decoded.__setitem__(0, decoded[0] + len(audio)) or "x", StreamOptions())
        fed = 0
        while fed < seconds * SAMPLE_RATE:
            for start in range(0, len(speech), 4096):
                stream.accept(speech[start : start + 4096])
                stream.partial()
                held[0] = max(held[0], stream.window.end - stream.window.start)
            fed += len(speech)
        stream.finish()
        return decoded[0] / fed, held[0]

    short, long = run(30), run(600)
    assert long[0] <= 1.5 * short[0]
    assert long[1] <= (StreamOptions().max_segment_s + 1) * SAMPLE_RATE


def test_a_segment_that_runs_long_is_cut_at_its_cap(utterances):
    speech = np.concatenate([u.load() for u in utterances[:6]])
    lengths = []
    stream = SegmentedStream(lambda audio: lengths.append(len(audio)) or "x", StreamOptions(max_segment_s=5))
    stream.accept(speech)
    stream.finish()
    assert max(lengths) <= 5 * SAMPLE_RATE + 1024


def test_accept_takes_integer_pcm_other_rates_and_channels(utterances):
    audio = utterances[0].load()
    heard = {}
    for name, samples, rate in [("float", audio, SAMPLE_RATE),
                                ("int16", (audio * 32768).clip(-32768, 32767).astype(np.int16), SAMPLE_RATE),
                                ("stereo", np.stack([audio, audio], axis=1), SAMPLE_RATE)]:
        stream = SegmentedStream(lambda a: f"{len(a)}", StreamOptions())
        stream.accept(samples, sample_rate=rate)
        heard[name] = stream.finish().text
    assert heard["float"] == heard["int16"] == heard["stereo"] != ""
    stream = SegmentedStream(lambda a: "x", StreamOptions())
    stream.accept(np.zeros(4800, np.float32), sample_rate=48_000)
    with pytest.raises(AudioError, match="one sample rate"):
        stream.accept(np.zeros(4800, np.float32), sample_rate=44_100)
    stream.finish()
    with pytest.raises(AudioError, match="finished"):
        stream.accept(np.zeros(10, np.float32))


def test_ctc_stream_any_chunking_same_text_and_silence_is_free(tiny_engines, two_utterances):
    with load_recognizer(tiny_engines / "tiny-fp32.json") as recognizer:
        results = []
        for sizes in ([len(two_utterances)], [1024], [160, 4000, 333]):
            stream = recognizer.stream()
            committed = feed(stream, two_utterances, sizes)
            assert all(later.startswith(earlier) for earlier, later in zip(committed, committed[1:]))
            results.append(stream.finish())
        assert results[0] == results[1] == results[2]
        assert results[0].text and results[0].segments[0].start < results[0].segments[-1].end
        runs = []
        recognizer._run, run = (lambda samples: runs.append(len(samples)) or run(samples)), recognizer._run
        stream = recognizer.stream()
        stream.accept(np.zeros(20 * SAMPLE_RATE, np.float32))
        assert stream.finish().text == "" and runs == []


def test_ctc_stream_of_one_chunk_reads_as_the_whole_file(tiny_engines, utterances):
    audio = utterances[0].load()
    with load_recognizer(tiny_engines / "tiny-fp32.json") as recognizer:
        stream = recognizer.stream(StreamOptions(chunk_s=60))
        stream.accept(audio)
        assert stream.partial() == recognizer.transcribe(audio)
        assert stream.finish().text == recognizer.transcribe(audio)


@pytest.mark.slow
def test_ctc_stream_cost_per_audio_second_is_flat(tiny_engines, utterances):
    speech = np.concatenate([u.load() for u in utterances[:4]])
    with load_recognizer(tiny_engines / "tiny-fp32.json") as recognizer:
        def samples_run_per_second(seconds: float) -> tuple[float, int]:
            runs, held = [0], 0
            stream = recognizer.stream()
            stream._logits_of = lambda samples, run=stream._logits_of: runs.__setitem__(0, runs[0] + len(samples)) or run(samples)
            fed = 0
            while fed < seconds * SAMPLE_RATE:
                stream.accept(speech)
                held = max(held, stream.window.end - stream.window.start)
                fed += len(speech)
            stream.finish()
            return runs[0] / fed, held

        short, long = samples_run_per_second(30), samples_run_per_second(600)
    assert long[0] <= 1.5 * short[0]
    assert long[1] <= len(speech) + 8 * SAMPLE_RATE


def test_whisper_stream_on_random_weights_matches_its_segments(tiny_whisper_engines, two_utterances):
    """Each committed segment is what the recognizer says of that segment's audio alone."""
    with load_recognizer(tiny_whisper_engines / "tiny-whisper-fp32.json") as recognizer:
        stream = recognizer.stream()
        feed(stream, two_utterances, [1024])
        transcript = stream.finish()
        assert len(transcript.segments) == 2
        for segment in transcript.segments:
            audio = two_utterances[int(segment.start * SAMPLE_RATE) : int(segment.end * SAMPLE_RATE)]
            assert recognizer.transcribe(audio) == segment.text


@pytest.mark.slow
def test_real_whisper_says_nothing_on_silence_or_noise_and_streams_speech(real_whisper_fp32, utterances):
    with load_recognizer(real_whisper_fp32) as recognizer:
        for quiet in (np.zeros(5 * SAMPLE_RATE, np.float32), study_noise(10)):
            stream = recognizer.stream()
            feed(stream, quiet, [1024])
            assert stream.finish().text == ""
        audio = utterances[2].load()
        stream = recognizer.stream()
        feed(stream, audio, [1024])
        assert stream.finish().text.lower().rstrip(".") == recognizer.transcribe(audio).lower().rstrip(".")
