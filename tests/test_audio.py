import numpy as np
import pytest
import soundfile

from asr_engines.audio import AudioError, checked_samples, load_audio


def tone(rate, seconds=1.0, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    mono = 0.5 * np.sin(2 * np.pi * 440 * t)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


def test_8khz_is_resampled_to_16khz(tmp_path):
    soundfile.write(tmp_path / "a.wav", tone(8000), 8000)
    audio = load_audio(tmp_path / "a.wav")
    assert audio.dtype == np.float32 and len(audio) == 16000
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz bins: the tone stays at 440 Hz


def test_44k1_stereo_becomes_16khz_mono(tmp_path):
    soundfile.write(tmp_path / "b.flac", tone(44100, channels=2), 44100)
    audio = load_audio(tmp_path / "b.flac")
    assert audio.ndim == 1 and len(audio) == 16000
    assert 0.45 < np.max(np.abs(audio)) < 0.55


def test_empty_file_is_refused_by_name(tmp_path):
    soundfile.write(tmp_path / "empty.wav", np.zeros(0), 16000)
    with pytest.raises(AudioError, match="empty.wav: the file holds no samples"):
        load_audio(tmp_path / "empty.wav")


def test_corrupt_and_missing_files_are_refused_by_name(tmp_path):
    (tmp_path / "corrupt.flac").write_bytes(b"fLaC" + bytes(range(256)) * 4)
    with pytest.raises(AudioError, match="corrupt.flac: unreadable audio"):
        load_audio(tmp_path / "corrupt.flac")
    with pytest.raises(AudioError, match="missing.wav: no such file"):
        load_audio(tmp_path / "missing.wav")


def test_in_memory_audio_at_the_wrong_rate_is_refused():
    with pytest.raises(AudioError, match="44100 Hz"):
        checked_samples(np.zeros(10, np.float32), 44100)
