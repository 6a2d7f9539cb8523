"""The LibriSpeech downloader on a local archive: checksum verified, unpacked, refused when it does not match."""

import hashlib
import io
import tarfile

import pytest
from click.testing import CliRunner

import asr_engines.calibration.download as download
from asr_engines.calibration.datasets import load_dataset
from asr_engines.commands.calibrate import command as calibration_cli


def make_archive(folder, split="dev-clean"):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in ((f"LibriSpeech/{split}/1/2/1-2.trans.txt", b"1-2-0000 HELLO\n"),
                           (f"LibriSpeech/{split}/1/2/1-2-0000.flac", (folder / "a.flac").read_bytes())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (folder / f"{split}.tar.gz").write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def test_download_verifies_and_unpacks(tmp_path, monkeypatch, utterances):
    (tmp_path / "a.flac").write_bytes(utterances[0].audio_path.read_bytes())
    monkeypatch.setitem(download.SHA256, "dev-clean", make_archive(tmp_path))
    target = download.download_librispeech("dev-clean", tmp_path / "data", base_url=f"file://{tmp_path}/", progress=False)
    (utterance,) = load_dataset(target)
    assert utterance.text == "HELLO" and utterance.load().size > 0


def test_a_wrong_checksum_leaves_nothing(tmp_path, monkeypatch, utterances):
    (tmp_path / "a.flac").write_bytes(utterances[0].audio_path.read_bytes())
    make_archive(tmp_path)
    monkeypatch.setitem(download.SHA256, "dev-clean", "0" * 64)
    with pytest.raises(download.DownloadError, match="is not the published"):
        download.download_librispeech("dev-clean", tmp_path / "data", base_url=f"file://{tmp_path}/", progress=False)
    assert not any((tmp_path / "data").iterdir())


def test_noisy_copy_of_a_dataset(tmp_path, utterances):
    import shutil

    source = tmp_path / "source"
    source.mkdir()
    for utterance in utterances[:2]:
        shutil.copyfile(utterance.audio_path, source / utterance.audio_path.name)
    (source / "x.trans.txt").write_text("".join(f"{u.id} {u.text}\n" for u in utterances[:2]))
    arguments = ["noisy", "--dataset", str(source), "--noise", "white:10dB", "--out", str(tmp_path / "noisy")]
    result = CliRunner().invoke(calibration_cli, arguments)
    assert result.exit_code == 0, result.output
    noisy = load_dataset(tmp_path / "noisy")
    assert [u.text for u in noisy] == [u.text for u in utterances[:2]]
    from asr_engines.calibration.noise import snr_db

    clean, mixed = utterances[0].load(), noisy[0].load()
    assert abs(snr_db(clean, mixed - clean) - 10) < 0.3  # 16-bit FLAC rounding moves it a little
