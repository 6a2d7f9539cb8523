"""Moonshine base's real weights through the offline route (docs/moonshine.md): the pinned moonshine-cpp wheel,
fetched once into .cache/wheels, converted to a checkpoint, exported and built like any model. The proof that the
route is right: on all 70 bundled utterances our fp32 engine writes the tokens transformers' `generate` writes on
the converted checkpoint, and those ONNX Runtime writes decoding the wheel's own `.ort` files."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


class OrtFilesGreedy:
    """Greedy decoding of the wheel's own files (encoder, merged decoder with its cache branch) with ONNX Runtime."""

    def __init__(self, folder):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        session = lambda name: onnxruntime.InferenceSession(str(folder / name), options, providers=["CPUExecutionProvider"])  # noqa: E731
        self.encoder, self.decoder = session("encoder_model.ort"), session("decoder_model_merged.ort")
        self.outputs = [output.name for output in self.decoder.get_outputs()]

    def __call__(self, audio: np.ndarray, limit: int) -> list[int]:
        (hidden,) = self.encoder.run(["last_hidden_state"], {"input_values": audio[np.newaxis]})
        past = {item.name: np.zeros((1, item.shape[1], 0, item.shape[3]), np.float32)
                for item in self.decoder.get_inputs() if item.name.startswith("past_key_values")}
        tokens, cached = [1], False
        for _ in range(limit):
            feeds = {"input_ids": np.asarray([tokens[-1:]], np.int64), "encoder_hidden_states": hidden,
                     "use_cache_branch": np.asarray([cached]), **past}
            results = dict(zip(self.outputs, self.decoder.run(self.outputs, feeds)))
            tokens.append(int(results["logits"][0, -1].argmax()))
            for name in past:
                if not (cached and ".encoder." in name):  # the cross-attention cache is made once, on the first step
                    past[name] = results[name.replace("past_key_values", "present")]
            cached = True
            if tokens[-1] == 2:
                break
        return tokens


@pytest.fixture(scope="module")
def moonshine_base(tmp_path_factory):
    """The converted checkpoint and the wheel's unpacked model folder."""
    import zipfile

    from asr_engines.export.moonshine_cpp import ConversionError, convert, fetch_wheel

    try:
        wheel = fetch_wheel()
    except ConversionError as error:
        pytest.skip(f"the pinned moonshine-cpp wheel is neither cached nor fetchable here: {error}")
    folder = tmp_path_factory.mktemp("moonshine-base")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(folder / "wheel")
    checkpoint = convert(wheel, folder / "moonshine-base")
    return checkpoint, next((folder / "wheel").rglob("encoder_model.ort")).parent


def test_moonshine_base_fp32_engine_matches_transformers_and_the_wheels_files_on_all_70(moonshine_base, utterances, tmp_path):
    import torch
    from transformers import MoonshineForConditionalGeneration

    from asr_engines import load_recognizer
    from asr_engines.engines.backends import make_builder
    from asr_engines.engines.build import build_engines
    from asr_engines.export import export_onnx, resolve_model
    from asr_engines.measure.wer import corpus_wer

    checkpoint, wheel_files = moonshine_base
    report = export_onnx(resolve_model(str(checkpoint)), tmp_path / "onnx")
    assert report.max_abs_diff < 1e-3
    (manifest,) = build_engines(tmp_path / "onnx", tmp_path / "engines", make_builder("onnxruntime"), ["fp32"], progress=False)
    model = MoonshineForConditionalGeneration.from_pretrained(checkpoint).eval()
    reference = OrtFilesGreedy(wheel_files)
    torch.set_num_threads(1)
    texts, differ_transformers, differ_files = [], [], []
    with load_recognizer(manifest, threads=1) as recognizer:
        for utterance in utterances:
            audio = utterance.load()
            limit = recognizer.max_new_tokens(len(audio))
            ours = [1, *recognizer.generate(audio)]
            with torch.inference_mode():
                generated = model.generate(torch.from_numpy(audio[np.newaxis]), max_new_tokens=limit, do_sample=False,
                                           num_beams=1)[0].tolist()
            differ_transformers += [utterance.id] * (ours != [token for token in generated if token != 2])
            differ_files += [utterance.id] * (ours != [token for token in reference(audio, limit) if token != 2])
            texts.append(recognizer.decode_tokens(ours[1:]))
    assert (differ_transformers, differ_files) == ([], [])
    assert corpus_wer([utterance.text for utterance in utterances], texts).wer <= 5.0
