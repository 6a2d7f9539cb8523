import numpy as np

from asr_engines.calibration.stream import calibration_stream
from asr_engines.features import CTCFrontEnd


def test_stream_mixes_clean_and_noisy_at_one_length(utterances):
    stream = calibration_stream(utterances, CTCFrontEnd(), count=10, noisy_fraction=0.5, length_s=4.0, seed=1)
    assert len(stream) == 10 and stream.description["noisy"] == 5
    assert {sample["input_values"].shape for sample in stream} == {(1, 64000)}
    assert all(sample["input_values"].dtype == np.float32 for sample in stream)


def test_stream_is_reproducible_and_seed_dependent(utterances):
    def make(seed):
        return calibration_stream(utterances, CTCFrontEnd(), count=4, seed=seed, length_s=2.0)

    assert make(0).sha256 == make(0).sha256 != make(1).sha256


def test_default_length_is_the_median_and_short_audio_is_zero_padded(utterances):
    stream = calibration_stream(utterances[:5], CTCFrontEnd(), count=5, noisy_fraction=0)
    lengths = sorted(len(u.load()) for u in utterances[:5])
    assert stream.inputs[0]["input_values"].shape[1] == lengths[2]
    padded = [s["input_values"][0] for s in stream if not s["input_values"][0, -100:].any()]
    assert padded  # the shorter utterances end in zeros
