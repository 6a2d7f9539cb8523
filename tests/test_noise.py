import numpy as np
import pytest
import soundfile

from asr_engines.calibration.noise import NoiseMixer, NoiseSpecError, parse_noise, snr_db


@pytest.fixture(scope="module")
def pool(utterances):
    return {utterance.id: utterance.load() for utterance in utterances[:6]}


@pytest.mark.parametrize("spec", ["white:10dB", "pink:5dB", "brown:0dB", "babble:10dB", "white:-3dB"])
def test_snr_is_what_was_asked(spec, pool):
    mixer = NoiseMixer(parse_noise(spec), pool)
    target = parse_noise(spec).snr_db
    for utterance_id, speech in list(pool.items())[:3]:
        noise = mixer.noise_for(speech, np.random.default_rng(1), utterance_id)
        assert abs(snr_db(speech, noise) - target) < 0.1


def test_noise_file_is_looped_and_scaled(pool, tmp_path):
    path = tmp_path / "hum.wav"
    t = np.arange(8000) / 16000
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 50 * t), 16000)
    mixer = NoiseMixer(parse_noise(f"file:{path}:6dB"))
    speech = next(iter(pool.values()))
    noise = mixer.noise_for(speech, np.random.default_rng(0))
    assert len(noise) == len(speech) and abs(snr_db(speech, noise) - 6) < 0.1


def test_study_preset_is_uniform_at_fixed_level(pool):
    speech = np.concatenate(list(pool.values()))
    noise = NoiseMixer(parse_noise("study")).noise_for(speech, np.random.default_rng(3))
    assert np.max(np.abs(noise)) <= 0.1 and np.max(np.abs(noise)) > 0.0999
    assert abs(np.std(noise) - 0.1 / np.sqrt(3)) < 0.0005  # 0.0577: the study's measured 0.056
    kurtosis = np.mean(noise**4) / np.mean(noise**2) ** 2
    assert abs(kurtosis - 1.8) < 0.03  # uniform; Gaussian would be 3
    counts, _ = np.histogram(noise, bins=10, range=(-0.1, 0.1))
    assert np.all(np.abs(counts / counts.mean() - 1) < 0.03)  # flat


def test_study_preset_gives_the_studys_snr_spread(utterances):
    mixer = NoiseMixer(parse_noise("study"))
    snrs = [snr_db(u.load(), mixer.noise_for(u.load(), np.random.default_rng(i))) for i, u in enumerate(utterances)]
    assert 0 < min(snrs) < 2 and 8 < max(snrs) < 10 and 5 < np.median(snrs) < 7  # study: 0.8 to 9.0, median 6


def test_same_seed_same_noise_other_seed_other_noise(pool):
    mixer = NoiseMixer(parse_noise("pink:5dB"), pool)
    speech = next(iter(pool.values()))
    first, again = (mixer.noise_for(speech, np.random.default_rng(7)) for _ in range(2))
    other = mixer.noise_for(speech, np.random.default_rng(8))
    assert np.array_equal(first, again) and not np.allclose(first, other)


def test_pink_and_brown_fall_with_frequency():
    mixer_pink, mixer_brown = NoiseMixer(parse_noise("pink:0dB")), NoiseMixer(parse_noise("brown:0dB"))
    reference = np.random.default_rng(0).standard_normal(2**16).astype(np.float32)
    for mixer, slope in ((mixer_pink, -1), (mixer_brown, -2)):
        power = np.abs(np.fft.rfft(mixer.noise_for(reference, np.random.default_rng(1)))) ** 2
        frequencies = np.fft.rfftfreq(2**16)
        low, high = power[(frequencies > 0.01) & (frequencies < 0.02)].mean(), power[(frequencies > 0.1) & (frequencies < 0.2)].mean()
        assert abs(np.log10(high / low) - slope) < 0.2  # a decade up in frequency: slope decades down in power


@pytest.mark.parametrize("bad", ["loud", "white", "white:x", "file:5dB", "pink:10dBm"])
def test_bad_specs_are_refused(bad):
    with pytest.raises(NoiseSpecError):
        parse_noise(bad)


def test_one_canonical_text_per_condition():
    assert str(parse_noise("white:10 dB")) == str(parse_noise("white:10dB")) == str(parse_noise(" white:10.0DB ")) == "white:10dB"
    assert str(parse_noise("study")) == "study"
    with pytest.raises(NoiseSpecError, match=r"study \| white:10dB \| pink:5dB \| brown:5dB \| babble:10dB \| file:PATH:10dB"):
        parse_noise("study:5dB")


def test_the_noisy_files_are_the_benchs_first_draw(tmp_path, utterances):
    """`asr-engines calibrate noisy --seed 4` writes what the bench's draw 0 of seed 4 adds."""
    from click.testing import CliRunner

    from asr_engines.calibration.noise import noisy_draw
    from asr_engines.commands.calibrate import command as main
    from asr_engines.measure.measurement import BenchSettings, _noisy_sets

    dataset = tmp_path / "three"
    dataset.mkdir()
    for utterance in utterances[:3]:
        soundfile.write(dataset / f"{utterance.id}.flac", utterance.load(), 16000)
    (dataset / "a.trans.txt").write_text("".join(f"{u.id} {u.text}\n" for u in utterances[:3]))
    result = CliRunner().invoke(main, ["noisy", "--dataset", str(dataset), "--noise", "white:5 dB", "--seed", "4",
                                       "--out", str(tmp_path / "noisy")])
    assert result.exit_code == 0 and "white:5dB noise" in result.output
    from asr_engines.calibration.datasets import load_dataset

    clean = load_dataset(dataset)
    settings = BenchSettings(dataset=str(dataset), noise=parse_noise("white:5dB"), noise_draws=2, seed=4)
    bench_draws = _noisy_sets(clean, [u.load() for u in clean], settings)
    for index, utterance in enumerate(clean):
        written, _ = soundfile.read(tmp_path / "noisy" / f"{utterance.id}.flac", dtype="float32")
        assert np.allclose(written, np.clip(bench_draws[0][index], -1, 1), atol=1e-4)  # 16-bit FLAC rounding
        assert not np.allclose(written, np.clip(bench_draws[1][index], -1, 1), atol=1e-4)
    assert np.array_equal(noisy_draw(4, 0, 1).standard_normal(4), noisy_draw(4, 0, 1).standard_normal(4))
