"""Model -> ONNX through Optimum's exporter, then a check of the ONNX against PyTorch on real audio."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from asr_engines.audio import SAMPLE_RATE
from asr_engines.export.models import ModelSource
from asr_engines.families import MOONSHINE_AUDIO_LENGTH

OPSET = 17  # TensorRT 8.5/8.6 (JetPack 5/6.0) parse up to 17; 17 also gives TensorRT its LayerNorm layer.
CHECK_AUDIO = Path(__file__).resolve().parent.parent / "data" / "librispeech-3752-4944" / "3752-4944-0000.flac"
CHECK_SECONDS = 8.0


class ExportError(RuntimeError):
    """The exporter failed; the message says what to do."""


@dataclass
class ExportReport:
    """What an export produced (written as `export.json` beside the ONNX files)."""

    model: str
    source: str
    family: str
    opset: int
    files: list[str]
    max_abs_diff: float | None
    check_audio: str
    export_s: float
    versions: dict


def export_onnx(source: ModelSource, out_dir: str | Path, opset: int = OPSET, check: bool = True) -> ExportReport:
    """Export `source` for automatic-speech-recognition into `out_dir` (replaced whole, atomically).

    CTC models become one `model.onnx` (input_values [batch, samples] -> logits), batch and length dynamic.
    The processor and tokenizer files are saved next to it. With `check`, PyTorch and ONNX Runtime
    logits on a real LibriSpeech utterance are compared and the max abs difference recorded.
    """
    from optimum.exporters.onnx import main_export

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        started = time.perf_counter()
        try:
            # Encoder-decoders: encoder + decoder + decoder_with_past, not the merged decoder (its If node troubles TensorRT).
            task = "automatic-speech-recognition" + ("-with-past" if source.family in ("whisper", "moonshine") else "")
            main_export(source.location, staging, task=task, opset=opset, do_validation=False, no_post_process=True)
        except OSError as error:
            raise ExportError(f"cannot fetch {source.location!r} for export: {str(error).splitlines()[0]}") from None
        export_s = time.perf_counter() - started
        for fix in AFTER_EXPORT.get(source.family, ()):
            fix(staging)
        max_diff = CHECKS[source.family](source, staging) if check else None
        report = ExportReport(
            model=source.name, source=source.location, family=source.family, opset=opset,
            files=sorted(path.name for path in staging.glob("*.onnx")), max_abs_diff=max_diff,
            check_audio=CHECK_AUDIO.name, export_s=round(export_s, 2), versions=_versions(),
        )
        (staging / "export.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.chmod(0o755)  # mkdtemp makes it private
        staging.rename(out_dir)
        return report
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_audio() -> np.ndarray:
    import soundfile

    audio, _ = soundfile.read(str(CHECK_AUDIO), dtype="float32")
    return audio[: int(CHECK_SECONDS * SAMPLE_RATE)]


def _session(path: Path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _check_ctc(source: ModelSource, onnx_dir: Path) -> float:
    """Max abs difference between PyTorch and ONNX Runtime CTC logits on CHECK_SECONDS of real speech."""
    import torch
    from transformers import AutoFeatureExtractor, AutoModelForCTC

    extractor = AutoFeatureExtractor.from_pretrained(onnx_dir)
    input_values = extractor(_check_audio(), sampling_rate=SAMPLE_RATE, return_tensors="np").input_values.astype(np.float32)
    model = AutoModelForCTC.from_pretrained(source.location).eval()
    with torch.inference_mode():
        expected = model(torch.from_numpy(input_values)).logits.numpy()
    (actual,) = _session(onnx_dir / "model.onnx").run(["logits"], {"input_values": input_values})
    return float(np.max(np.abs(actual - expected)))


def _check_whisper(source: ModelSource, onnx_dir: Path) -> float:
    """Max abs difference between PyTorch and ONNX Runtime on real speech: the encoder's output and the
    decoder's logits for the prompt (the largest of the two)."""
    import torch
    from transformers import AutoFeatureExtractor, WhisperForConditionalGeneration

    features = AutoFeatureExtractor.from_pretrained(onnx_dir)(_check_audio(), sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
    model = WhisperForConditionalGeneration.from_pretrained(source.location, dtype=torch.float32).eval()
    prompt = np.asarray([[model.generation_config.decoder_start_token_id, model.generation_config.no_timestamps_token_id]])
    with torch.inference_mode():
        hidden = model.model.encoder(torch.from_numpy(features)).last_hidden_state
        logits = model(encoder_outputs=(hidden,), decoder_input_ids=torch.from_numpy(prompt)).logits.numpy()
    (onnx_hidden,) = _session(onnx_dir / "encoder_model.onnx").run(["last_hidden_state"], {"input_features": features})
    (onnx_logits,) = _session(onnx_dir / "decoder_model.onnx").run(["logits"], {"input_ids": prompt, "encoder_hidden_states": onnx_hidden})
    return float(max(np.max(np.abs(onnx_hidden - hidden.numpy())), np.max(np.abs(onnx_logits - logits))))


def _check_moonshine(source: ModelSource, onnx_dir: Path) -> float:
    """Max abs difference between PyTorch and ONNX Runtime on real speech: the encoder's output and the first
    decoder's logits for the start token (the largest of the two)."""
    import torch
    from transformers import MoonshineForConditionalGeneration
    from transformers.modeling_outputs import BaseModelOutput

    audio = _check_audio()[np.newaxis]
    mask = np.ones(audio.shape, np.int64)
    model = MoonshineForConditionalGeneration.from_pretrained(source.location, dtype=torch.float32).eval()
    prompt = np.asarray([[model.generation_config.decoder_start_token_id]])
    with torch.inference_mode():
        hidden = model.model.encoder(torch.from_numpy(audio), attention_mask=torch.from_numpy(mask)).last_hidden_state
        logits = model(encoder_outputs=BaseModelOutput(hidden), attention_mask=torch.from_numpy(mask),
                       decoder_input_ids=torch.from_numpy(prompt)).logits.numpy()
    (onnx_hidden,) = _session(onnx_dir / "encoder_model.onnx").run(["last_hidden_state"], {"input_values": audio, "attention_mask": mask})
    (onnx_logits,) = _session(onnx_dir / "decoder_model.onnx").run(
        ["logits"], {"input_ids": prompt, "encoder_hidden_states": onnx_hidden, "encoder_attention_mask": mask})
    return float(max(np.max(np.abs(onnx_hidden - hidden.numpy())), np.max(np.abs(onnx_logits - logits))))


CHECKS = {"ctc": _check_ctc, "whisper": _check_whisper, "moonshine": _check_moonshine}

def _name_moonshine_audio_mask_length(onnx_dir: Path) -> None:
    """Optimum names the length of the decoders' `encoder_attention_mask` (samples) and of `encoder_hidden_states`
    (the encoder's frames) alike; a TensorRT profile needs them apart, so the mask's gets its own name."""
    import onnx

    for name in ("decoder_model.onnx", "decoder_with_past_model.onnx"):
        path = onnx_dir / name
        model = onnx.load(str(path))
        for tensor in model.graph.input:
            if tensor.name == "encoder_attention_mask":
                tensor.type.tensor_type.shape.dim[1].dim_param = MOONSHINE_AUDIO_LENGTH
        onnx.save(model, str(path))


#: model family -> what its exported graphs need before anything reads them.
AFTER_EXPORT = {"moonshine": (_name_moonshine_audio_mask_length,)}


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found
