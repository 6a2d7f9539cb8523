"""The faults an app embedding the runtime meets: what microphones hand over, what is not audio, audio too short
for a frame, a recognizer closed under a caller, a file that fails among several; and Whisper on silence and noise.
Each is one line of the package's own error (or a clear result), never a traceback from a library below."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from asr_engines import load_recognizer
from asr_engines.audio import AudioError
from asr_engines.runtime.engine import EngineError, InFlight


def test_integer_pcm_is_scaled_as_soundfile_reads_it(tiny_engines, speech):
    pcm = np.round(speech * 32767).astype(np.int16)
    with load_recognizer(tiny_engines / "tiny-fp32.json", threads=1) as recognizer:
        assert recognizer.logits(pcm.astype(np.float32) / 32768).shape[0] > 0
        as_float = recognizer.transcribe(pcm.astype(np.float32) / 32768)
        assert recognizer.transcribe(pcm) == as_float
        assert recognizer.transcribe(pcm.astype(np.int32) << 16) == as_float


@pytest.mark.parametrize(("audio", "message"), [([0.0] * 16000, "a numpy array of samples, not list"),
                                                 (None, "not NoneType"), (b"\x00\x01" * 8000, "not bytes"),
                                                 (np.zeros((16000, 2), np.float32), r"shape \(16000, 2\); expected mono"),
                                                 (np.array(["a", "b"]), "must be numbers")])
def test_what_is_not_audio_is_refused_in_one_line(tiny_engines, audio, message):
    with load_recognizer(tiny_engines / "tiny-fp32.json", threads=1) as recognizer:
        with pytest.raises(AudioError, match=message):
            recognizer.transcribe(audio)


@pytest.mark.parametrize("samples", [0, 160, 399])
def test_audio_shorter_than_one_ctc_frame_reads_as_nothing(tiny_engines, samples):
    with load_recognizer(tiny_engines / "tiny-fp32.json", threads=1) as recognizer:
        assert recognizer.transcribe(np.zeros(samples, np.float32)) == ""
        assert isinstance(recognizer.transcribe(np.full(400, 0.01, np.float32)), str)  # 25 ms: one frame


def test_the_cli_transcribes_every_file_and_fails_at_the_end(tmp_path, tiny_engines, speech):
    from asr_engines.commands import transcribe

    soundfile.write(tmp_path / "a.wav", speech, 16000)
    (tmp_path / "b.wav").write_bytes(b"RIFF" + bytes(40))
    soundfile.write(tmp_path / "c.wav", np.zeros(160, np.float32), 16000)  # 10 ms
    result = CliRunner().invoke(transcribe.command, [str(tiny_engines / "tiny-fp32.json"),
                                                     *(str(tmp_path / name) for name in ("a.wav", "b.wav", "c.wav"))])
    lines = result.output.splitlines()
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert [line.split("\t")[0] for line in lines if "\t" in line] == [str(tmp_path / "a.wav"), str(tmp_path / "c.wav")]
    assert [line for line in lines if line.startswith("transcribe: ")] == [
        next(line for line in lines if line.startswith(f"transcribe: {tmp_path / 'b.wav'}: unreadable audio"))]


def test_close_waits_for_calls_in_flight_and_later_calls_are_refused(tiny_engines, speech):
    in_flight, order = InFlight("engine"), []

    def slow_call():
        with in_flight.call():
            time.sleep(0.3)
            order.append("call done")

    worker = threading.Thread(target=slow_call)
    worker.start()
    time.sleep(0.05)
    assert in_flight.close() is True
    order.append("closed")
    worker.join()
    assert order == ["call done", "closed"] and in_flight.close() is False
    recognizer = load_recognizer(tiny_engines / "tiny-fp32.json", threads=1)
    recognizer.close()
    with pytest.raises(EngineError, match="tiny-fp32 is closed; load it again"):
        recognizer.transcribe(speech)
    recognizer.close()  # twice is harmless


def test_an_onnx_runtime_failure_is_one_engine_error(tiny_engines):
    with load_recognizer(tiny_engines / "tiny-fp32.json", threads=1) as recognizer:
        with pytest.raises(EngineError, match=r"tiny-fp32.onnx: ONNX Runtime could not run it \("):
            recognizer.engine.run({"input_values": np.zeros((1, 2, 3), np.float32)})


@pytest.mark.slow
def test_whisper_gives_no_text_for_silence_or_noise_and_says_why(real_whisper_fp32, utterances):
    """Real tiny.en: digital silence (5 s, 0 s, 70 s long-form) and white noise (the study's level and a tenth of it)
    give "" with the no-speech flag, where the model alone writes "you"; speech is never flagged."""
    rng = np.random.default_rng(0)
    with load_recognizer(real_whisper_fp32, threads=2) as recognizer:
        for audio in (np.zeros(5 * 16000, np.float32), np.zeros(0, np.float32), np.zeros(70 * 16000, np.float32),
                      rng.uniform(-0.1, 0.1, 5 * 16000).astype(np.float32), rng.uniform(-0.01, 0.01, 5 * 16000).astype(np.float32)):
            result = recognizer.recognize(audio)
            assert result.text == "" and result.no_speech and result.no_speech_prob > 0.9
            assert recognizer.transcribe(audio) == ""
        assert recognizer.decoding()["windows_without_speech"] >= 12
        for utterance in utterances[:10]:
            result = recognizer.recognize(utterance.load())
            assert not result.no_speech and result.no_speech_prob < 0.6 and result.text


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m["decoder"].pop("blank_id"), "decoder.blank_id is missing"),
    (lambda m: m["front_end"].update(do_normalize="yes"), "front_end.do_normalize should be bool, not str"),
    (lambda m: m["decoder"].update(vocabulary="ABC"), "decoder.vocabulary should be list, not str"),
])
def test_a_manifest_setting_of_the_wrong_kind_is_named(tmp_path, tiny_engines, change, message):
    import json
    import shutil

    from asr_engines.manifest import ManifestError

    for path in tiny_engines.glob("tiny-fp32*"):
        shutil.copy(path, tmp_path / path.name)
    manifest = json.loads((tmp_path / "tiny-fp32.json").read_text())
    change(manifest)
    (tmp_path / "tiny-fp32.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match=message):
        load_recognizer(tmp_path / "tiny-fp32.json")


def test_a_vocabulary_cut_short_is_refused_not_read_as_empty_text(tmp_path, tiny_engines):
    import json
    import shutil

    for path in tiny_engines.glob("tiny-fp32*"):
        shutil.copy(path, tmp_path / path.name)
    manifest = json.loads((tmp_path / "tiny-fp32.json").read_text())
    manifest["decoder"]["vocabulary"] = manifest["decoder"]["vocabulary"][:10]
    (tmp_path / "tiny-fp32.json").write_text(json.dumps(manifest))
    with pytest.raises(EngineError, match=r"the model gives \d+ classes but its manifest's vocabulary has 10"):
        load_recognizer(tmp_path / "tiny-fp32.json")


def test_the_bench_claims_its_output_before_measuring(tmp_path, tiny_engines):
    """A folder it cannot write, another live run's folder, or one holding an earlier run's results.json: one line,
    before any engine is measured; a run killed without cleaning up does not block the next."""
    import os

    from asr_engines.commands import bench

    def run(out):
        return CliRunner().invoke(bench.command, [str(tiny_engines / "tiny-fp32.json"), "--meter", "none", "--baseline-s", "0",
                                                  "--threads", "1", "--limit", "1", "--no-progress", "--out", str(out),
                                                  "--store", str(tmp_path / "store.sqlite")])

    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        if not os.access(read_only, os.W_OK):  # root writes anywhere: then this part cannot be shown
            result = run(read_only / "out")
            assert result.exit_code == 1 and result.output.strip() == f"bench: cannot write to {read_only / 'out'}: Permission denied"
    finally:
        read_only.chmod(0o700)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    result = run(blocked / "out")  # a path through a file: unwritable for root too
    assert result.exit_code == 1 and result.output.strip().startswith(f"bench: cannot write to {blocked / 'out'}: ")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / ".claimed-by").write_text(f"{os.getppid()}\n")
    result = run(busy)
    message = f"bench: {busy} is being written by another run (pid {os.getppid()}); choose another --out"
    assert result.exit_code == 1 and result.output.strip() == message
    (busy / ".claimed-by").write_text("999999999\n")  # its process is gone: taken over
    assert run(busy).exit_code == 0 and (busy / "results.json").is_file() and not (busy / ".claimed-by").exists()
    result = run(busy)
    message = f"bench: {busy} already holds results.json from another run; choose another --out or remove it"
    assert result.exit_code == 1 and result.output.strip() == message


def test_a_file_damaged_in_place_is_found_by_check_and_then_refused_by_every_load(tmp_path, tiny_engines, monkeypatch):
    """Size and modification time kept: a load trusts the remembered hash (a stat per file); `asr-engines check`
    reads every byte again, says which file, exits 1, and what it learned makes the next load refuse the engine."""
    import os
    import shutil

    from asr_engines.cli import main
    from asr_engines.manifest import ManifestError

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for path in tiny_engines.glob("tiny-int8*"):
        shutil.copy(path, tmp_path / path.name)
    load_recognizer(tmp_path / "tiny-int8.json").close()  # the hash is now remembered
    graph = tmp_path / "tiny-int8.onnx"
    stat = graph.stat()
    with open(graph, "r+b") as handle:  # one byte changed in place
        handle.seek(stat.st_size // 2)
        byte = handle.read(1)
        handle.seek(stat.st_size // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.utime(graph, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    load_recognizer(tmp_path / "tiny-int8.json").close()  # not noticed: what the cheap check cannot see
    result = CliRunner().invoke(main, ["check", str(tmp_path / "tiny-int8.json"), str(tiny_engines / "tiny-fp32.json")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and "tiny-int8.onnx is not the file tiny-int8.json was built with" in result.output
    assert any(line.startswith("ok ") and "tiny-fp32.json: 1 file," in line for line in lines)
    with pytest.raises(ManifestError, match="sha256 differs"):
        load_recognizer(tmp_path / "tiny-int8.json")


def test_a_loaded_file_without_a_checksum_is_refused(tmp_path, tiny_engines):
    """An int8 manifest whose graph is the fp32 file, which its files_sha256 does not list: refused, not run as int8."""
    import json
    import shutil

    from asr_engines.manifest import ManifestError

    for path in [*tiny_engines.glob("tiny-int8*"), tiny_engines / "tiny-fp32.onnx"]:
        shutil.copy(path, tmp_path / path.name)
    manifest = json.loads((tmp_path / "tiny-int8.json").read_text())
    manifest["files"]["model"] = "tiny-fp32.onnx"
    (tmp_path / "tiny-int8.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="loads 'tiny-fp32.onnx' but files_sha256 has no checksum for it"):
        load_recognizer(tmp_path / "tiny-int8.json")


@pytest.mark.parametrize("cache_text", ["null", "[1, 2]", '{"x": null}', "{torn"])
def test_a_damaged_hash_cache_is_rebuilt_never_fatal(tmp_path, tiny_engines, monkeypatch, cache_text):
    import json

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = tmp_path / "asr-engines" / "sha256.json"
    cache.parent.mkdir()
    cache.write_text(cache_text)
    load_recognizer(tiny_engines / "tiny-fp32.json").close()
    entries = json.loads(cache.read_text())
    assert str((tiny_engines / "tiny-fp32.onnx").resolve()) in entries
