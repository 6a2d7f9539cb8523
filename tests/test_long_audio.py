"""Long recordings: CTC in overlapping chunks (boundaries, edge lengths, memory that follows the chunk, not the
recording) and Whisper long-form with timestamps (segment seeking; the same text as transformers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asr_engines.runtime.chunking import Span, chunk_spans, chunked_logits
from asr_engines.runtime.ctc import CTCDecoder
from asr_engines.runtime.whisper_timestamps import TimestampRules

FRAME = 320  # samples per CTC frame, as wav2vec2's
VOCABULARY = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"]


def encoded_audio(tokens: list[int]) -> np.ndarray:
    """Audio whose frame f holds token id tokens[f] as its sample values: a model whose output is known."""
    return np.repeat(np.asarray(tokens, np.float32), FRAME)


def reading_model(samples: np.ndarray) -> np.ndarray:
    """One-hot logits of the token ids encoded in `samples` (see encoded_audio): chunked or whole, it reads the same."""
    ids = samples[: len(samples) // FRAME * FRAME : FRAME].astype(int)
    return np.eye(len(VOCABULARY), dtype=np.float32)[ids]


def test_spans_at_the_edges():
    assert list(chunk_spans(999, 1000, 100)) == [Span(0, 999, 0, 0)]  # shorter than a chunk: one run
    assert list(chunk_spans(1000, 1000, 100)) == [Span(0, 1000, 0, 0)]  # exactly one chunk
    assert list(chunk_spans(1001, 1000, 100)) == [Span(0, 1000, 0, 100), Span(800, 1001, 100, 0)]  # one sample over
    spans = list(chunk_spans(5000, 1000, 100))
    kept = [(span.start + span.left, span.end - span.right) for span in spans]
    assert kept[0][0] == 0 and kept[-1][1] == 5000 and all(a[1] == b[0] for a, b in zip(kept, kept[1:]))  # a partition
    with pytest.raises(ValueError, match="must be shorter than the chunk"):
        list(chunk_spans(5000, 1000, 500))


def test_a_word_across_a_chunk_boundary_comes_out_once():
    """Chunks of 100 frames with 20 of context each side keep frames 0-80, 80-140, ...: "HELLO" sits across 80."""
    word = [VOCABULARY.index(letter) for letter in "HEL"] + [0] + [VOCABULARY.index(letter) for letter in "LO"]
    tokens = [0] * 76 + [token for token in word for _ in range(2)] + [4] * 4 + [VOCABULARY.index("A")] * 3 + [0] * 200
    audio = encoded_audio(tokens)
    whole = reading_model(audio)
    chunked = chunked_logits(audio, reading_model, chunk=100 * FRAME, stride=20 * FRAME)
    assert chunked.shape == whole.shape and np.array_equal(chunked.argmax(-1), whole.argmax(-1))
    assert CTCDecoder(VOCABULARY)(chunked) == "HELLO A"


@pytest.mark.parametrize("length", [100 * FRAME - 1, 100 * FRAME, 100 * FRAME + 1, 517 * FRAME + 123])
def test_chunked_frames_equal_the_whole_files_at_any_length(length):
    tokens = np.random.default_rng(length).integers(0, len(VOCABULARY), length // FRAME + 1).tolist()
    audio = encoded_audio(tokens)[:length]
    chunked = chunked_logits(audio, reading_model, chunk=100 * FRAME, stride=20 * FRAME)
    assert np.array_equal(chunked.argmax(-1), reading_model(audio).argmax(-1))


def test_a_real_ctc_engine_reads_a_long_recording_in_chunks(tiny_engines, utterances):
    """The tiny random wav2vec2 on 45 s of real speech: chunked (20 s, 4 s strides) against one whole-file run,
    per frame. Random weights amplify the chunks' own normalisation, so the bound is loose; the benchmark states
    the figure for wav2vec2-base."""
    from asr_engines import load_recognizer

    recognizer = load_recognizer(tiny_engines / "tiny-fp32.json", threads=1)
    audio = np.concatenate([utterance.load() for utterance in utterances[:10]])[: 45 * 16000]
    assert recognizer.chunk == 20 * 16000 and len(audio) > recognizer.chunk
    chunked = recognizer.logits(audio)
    whole = recognizer.engine.run(recognizer._front_end(audio))["logits"][0]
    assert chunked.shape == whole.shape
    assert np.mean(chunked.argmax(-1) == whole.argmax(-1)) > 0.8
    assert isinstance(recognizer.transcribe(audio), str)


PEAK_RSS = """
import sys, numpy as np
from asr_engines import load_recognizer
from asr_engines.measure.memory import max_rss_mb
recognizer = load_recognizer(sys.argv[1], threads=1)
audio = np.random.default_rng(0).uniform(-0.3, 0.3, int(float(sys.argv[2]) * 16000)).astype(np.float32)
recognizer.transcribe(audio)
print(max_rss_mb())
"""


def test_ctc_memory_does_not_grow_with_the_recording(tiny_engines):
    """10 minutes against 30 s, each in a fresh process: the audio itself (38 MB) and no more than a generous
    margin; read whole, the attention over 30 000 frames alone would take gigabytes."""
    def peak(seconds: float) -> float:
        result = subprocess.run([sys.executable, "-c", PEAK_RSS, str(tiny_engines / "tiny-int8.json"), str(seconds)],
                                capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1], timeout=600)
        return float(result.stdout.split()[-1])

    short, long = peak(30), peak(600)
    assert long - short < 150, (short, long)


def test_segments_keep_complete_ones_and_seek_to_the_last_end():
    rules = TimestampRules(timestamp_begin=1000, eos_id=999, no_timestamps_id=998)
    t = 1000  # <|0.00|>
    # two complete segments and an unfinished third: drop the third, seek to the second's end (4.00 s = 400 frames)
    tokens, advance = rules.segments([t, 1, 2, t + 100, t + 100, 3, t + 200, t + 200, 4, 5], 3000)
    assert tokens == [1, 2, 3] and advance == 400
    # the speech ended inside the window (a lone last timestamp): keep all, move a whole window on
    tokens, advance = rules.segments([t, 1, 2, t + 100, t + 100, 3, t + 150], 3000)
    assert tokens == [1, 2, 3] and advance == 3000
    # no complete pair: keep all, move on by the window (here the recording's last 1200 frames)
    assert rules.segments([t, 1, 2, 3], 1200) == ([1, 2, 3], 1200)


def test_timestamp_rules_pair_and_order_timestamps():
    rules = TimestampRules(timestamp_begin=10, eos_id=9, no_timestamps_id=8, max_initial_timestamp_index=2)
    allowed = lambda generated: [i for i, s in enumerate(scores_after(rules, generated)) if np.isfinite(s)]  # noqa: E731
    assert allowed([]) == [10, 11, 12]  # the first token is a timestamp, at most the initial limit
    assert 10 not in allowed([10]) and 5 in allowed([10])  # after a segment's start: text
    assert allowed([10, 5, 13]) == [9, 13, 14, 15]  # after a segment's end: its pair or the end, never earlier
    assert allowed([10, 5, 13, 13]) == [0, 1, 2, 3, 4, 5, 6, 7, 9]  # after a pair: text or the end


def scores_after(rules: TimestampRules, generated: list[int]) -> np.ndarray:
    scores = np.zeros((1, 16), np.float32)
    scores[0, :10] = 5.0  # text much likelier than any timestamp: only the masks decide
    rules.apply(scores, [generated])
    return scores[0]


@pytest.mark.slow
def test_whisper_long_form_matches_transformers_where_speech_ends_mid_window(utterances, real_whisper_fp32):
    """Real tiny.en, 3 utterances then 25 s of silence (38 s: the speech ends inside the first window): the same
    text as transformers' long-form generate with return_timestamps over the speech, and the silence adds nothing
    (transformers writes " ." for the silent window: its no-speech check is off unless asked; ours drops the window,
    docs/engines.md, Whisper)."""
    import torch
    from conftest import SHARED_WHISPER
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from asr_engines import load_recognizer

    manifest = real_whisper_fp32
    speech = np.concatenate([utterance.load() for utterance in utterances[:3]])
    audio = np.concatenate([speech, np.zeros(25 * 16000, np.float32)])
    assert 30 < len(audio) / 16000 < 45
    recognizer = load_recognizer(manifest, threads=2, trim_margin_s=None)  # long-form reads whole windows; so does `alone`
    ours = recognizer.transcribe(audio)
    processor = WhisperProcessor.from_pretrained(SHARED_WHISPER)
    model = WhisperForConditionalGeneration.from_pretrained(SHARED_WHISPER, dtype=torch.float32).eval()
    features = processor(audio, sampling_rate=16000, return_tensors="pt", truncation=False, padding="longest",
                         return_attention_mask=True)
    with torch.inference_mode():
        generated = model.generate(features.input_features, attention_mask=features.attention_mask,
                                   return_timestamps=True, return_segments=True)
    segments = generated["segments"][0]
    in_speech = [segment for segment in segments if float(segment["start"]) < len(speech) / 16000]
    assert len(in_speech) < len(segments)  # transformers did write something for the silence
    text = processor.decode(torch.cat([segment["tokens"] for segment in in_speech]), skip_special_tokens=True)
    assert ours == text.strip()
    alone = recognizer.transcribe_batch([speech])[0]
    assert ours.split()[:5] == alone.split()[:5]


def test_the_bench_takes_a_long_recording_as_a_dataset_row(tiny_engines, utterances, tmp_path):
    """A manifest row can be a recording of over 40 s with its full reference: measured like any other row."""
    import json

    import soundfile
    from click.testing import CliRunner

    from asr_engines.commands import bench

    joined = np.concatenate([utterance.load() for utterance in utterances[:14]])
    soundfile.write(tmp_path / "long.flac", joined, 16000)
    (tmp_path / "long.jsonl").write_text(json.dumps({"audio": "long.flac", "text": " ".join(u.text for u in utterances[:14])}) + "\n")
    result = CliRunner().invoke(bench.command, [
        str(tiny_engines / "tiny-int8.json"), "--dataset", str(tmp_path / "long.jsonl"), "--noise", "none", "--warmup", "0",
        "--meter", "none", "--baseline-s", "0", "--threads", "1", "--out", str(tmp_path / "out"), "--no-progress",
        "--store", str(tmp_path / "store.sqlite")])
    assert result.exit_code == 0, result.output
    (row,) = json.loads((tmp_path / "out" / "results.json").read_text())
    assert row["utterances"] == 1 and row["audio_s"] == pytest.approx(len(joined) / 16000, abs=0.001) and row["audio_s"] > 40
    assert row["rtfx"] > 0 and row["peak_rss_mb"] > 0 and row["wer_clean"] > 0


class SpanLog:
    """Samples that note the longest span a reader asked for."""

    def __init__(self, audio: np.ndarray):
        self.audio, self.longest = audio, 0

    def __len__(self) -> int:
        return len(self.audio)

    def __getitem__(self, span: slice) -> np.ndarray:
        part = self.audio[span]
        self.longest = max(self.longest, len(part))
        return part


def test_whisper_long_form_reads_the_recording_a_window_at_a_time(tiny_whisper_engines, utterances):
    """2 minutes long-form: the same windows decoded from spans as from the whole array, and no span read longer
    than one 30 s window and its STFT padding (the log-mel floor's reference comes from a pass in blocks of one
    window). The log-mel of a window equals that window of the whole recording's, bit for bit."""
    from asr_engines import load_recognizer

    recognizer = load_recognizer(tiny_whisper_engines / "tiny-whisper-fp32.json", threads=1)
    audio = np.concatenate([utterance.load() for utterance in utterances[:20]])[: 120 * 16000]
    spans = SpanLog(audio)
    assert recognizer.decode_long(spans) == recognizer.decode_long(audio)
    assert 30 * 16000 <= spans.longest <= 30 * 16000 + 400
    front_end = recognizer._front_end
    whole = front_end.log_mel(audio)
    assert np.array_equal(front_end.log_mel(audio, 4000, 3000, front_end.log10_top(audio)), whole[:, 4000:7000])


def test_a_recording_is_read_from_an_unnamed_file_by_spans(tmp_path, utterances, monkeypatch):
    """What `transcribe` reads long files through: the samples load_audio gives (16 kHz file: identical; 44.1 kHz
    stereo: resampled in blocks, within soxr's streaming error), spans by slice only, nothing named on disk even
    while open, and one line for what is not audio."""
    import tempfile

    import soundfile

    from asr_engines.audio import AudioError, Recording, load_audio

    speech = np.concatenate([utterance.load() for utterance in utterances[:8]])
    soundfile.write(tmp_path / "speech.flac", speech, 16000)
    stereo = np.stack([speech, speech * 0.5], axis=1)
    soundfile.write(tmp_path / "stereo.wav", np.repeat(stereo, 2, axis=0), 32000)  # each sample twice: 32 kHz
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with Recording(tmp_path / "speech.flac", block_s=7.0) as recording:
        assert not list(scratch.iterdir())
        assert len(recording) == len(speech) and recording.seconds == len(speech) / 16000
        assert np.array_equal(recording[:], load_audio(tmp_path / "speech.flac"))
        assert np.array_equal(recording[16000:48000], recording[:][16000:48000])
        assert len(recording[len(speech) - 10 : len(speech) + 99]) == 10
        with pytest.raises(TypeError, match="read by spans"):
            recording[5]
    with Recording(tmp_path / "stereo.wav", block_s=3.0) as recording:
        whole = load_audio(tmp_path / "stereo.wav")
        assert abs(len(recording) - len(whole)) <= 1
        common = min(len(recording), len(whole)) - 100  # soxr's stream and its one-shot call may end a sample apart
        assert np.max(np.abs(recording[:common] - whole[:common])) < 1e-3
    (tmp_path / "noise.wav").write_bytes(b"RIFF not audio")
    soundfile.write(tmp_path / "nan.wav", np.full(1600, np.nan, np.float32), 16000, subtype="FLOAT")
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    for name, message in [("noise.wav", "unreadable audio"), ("nan.wav", "holds NaN or infinite samples"),
                          ("empty.wav", "the file holds no samples"), ("missing.wav", "no such file")]:
        with pytest.raises(AudioError, match=message):
            Recording(tmp_path / name)
    assert not list(scratch.iterdir())


def test_the_cli_reads_a_long_file_as_a_recording_with_the_same_text(tmp_path, tiny_engines, utterances):
    import soundfile
    from click.testing import CliRunner

    from asr_engines import Recording, load_audio, load_recognizer
    from asr_engines.cli import main

    soundfile.write(tmp_path / "long.flac", np.concatenate([utterance.load() for utterance in utterances[:12]]), 16000)
    with load_recognizer(tiny_engines / "tiny-fp32.json") as recognizer:
        expected = recognizer.transcribe(load_audio(tmp_path / "long.flac"))
        with Recording(tmp_path / "long.flac") as recording:
            assert len(recording) > recognizer.chunk and recognizer.transcribe(recording) == expected
    result = CliRunner().invoke(main, ["transcribe", str(tiny_engines / "tiny-fp32.json"), str(tmp_path / "long.flac")])
    assert result.exit_code == 0 and result.output.strip() == expected
