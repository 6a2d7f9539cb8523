"""Model families, each in one place: which models belong to it, the graphs an engine of it is made of, its
front end, and how it reads recordings longer than one input. The stages' own per-family tables (shape ranges in
engines/profiles.py, recognizers in runtime/recognizer.py) are keyed by these names, and tests/test_families.py
checks each covers every family here. A new family is a new entry in FAMILIES and a line in each of those tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from asr_engines.features import CTCFrontEnd, FrontEnd, MoonshineFrontEnd, WhisperFrontEnd
from asr_engines.variants import Variant


@dataclass(frozen=True)
class GraphPart:
    """One ONNX graph of an engine. `calibrated` parts are quantized from the calibration stream in the
    calibrated int8 forms (TensorRT's plan, the Q/DQ file) and judged by the INT8 WER budget; the others are built
    as the backend chooses (Builder.part_variants). `cpu_int8`: the forms ONNX Runtime's CPU int8 engine may build
    the graph as, fastest first; the build keeps the first whose WER cost it measured within its budget, and the
    last (the safest) where it measured none (measure/choices.py)."""

    name: str
    file: str
    calibrated: bool = True
    sliced_positions: bool = False  # Whisper's encoder: ONNX Runtime engines take fewer frames (passes/encoder_positions.py)
    cpu_int8: tuple[Variant, ...] = (Variant.INT8,)
    token_head: str = ""  # Whisper's decoders: "first" (reads the prompt) or "next" get a greedy head (passes/token_head.py)
    attention_heads: str = ""  # the config.json key of its head count, where its attentions may be fused (passes/attention.py)


@dataclass(frozen=True)
class Family:
    """What a model family is, independent of any stage."""

    name: str
    is_member: Callable[[str, list[str]], bool]  # (config model_type, architectures) -> whether a model belongs
    graphs: tuple[GraphPart, ...]
    front_end: Callable[[dict], FrontEnd]  # from the processor's preprocessor_config.json
    chunking: dict | None  # CTC: chunks of chunk_s overlapping by stride_s; None: the recognizer reads long-form


def _whisper_front_end(config: dict) -> FrontEnd:
    return WhisperFrontEnd(num_mel_bins=config.get("feature_size", 80), n_fft=config.get("n_fft", 400),
                           hop_length=config.get("hop_length", 160), chunk_s=config.get("chunk_length", 30))


#: The encoder-decoder families' CPU int8 forms: the encoder with int8 weights and activations quantized per call
#: where the build measured that within its WER budget, else fp32; the decoders always so quantized.
ENCODER_CPU_INT8 = (Variant.INT8_DYNAMIC, Variant.FP32)
DECODER_CPU_INT8 = (Variant.INT8_DYNAMIC,)
#: CTC models read long recordings in chunks of 20 s overlapping by 4 s on each side (the Hugging Face pipeline's
#: scheme); memory then follows the chunk, not the recording.
CTC = Family(
    "ctc", lambda model_type, architectures: any(name.endswith("ForCTC") for name in architectures),
    (GraphPart("model", "model.onnx"),),
    lambda config: CTCFrontEnd(do_normalize=bool(config.get("do_normalize", True))),
    {"chunk_s": 20.0, "stride_s": 4.0},
)
#: Whisper's decoders take no calibration stream (their inputs are tokens and a KV cache, not audio); on a CPU they
#: take int8 weights with activations quantized per call. The encoder, calibrated, cost tiny.en too much on noisy
#: speech (docs/results/2026-12-whisper-int8-cpu.md); with int8 weights and activations quantized per call it is
#: the faster form where its measured cost holds, else it stays fp32.
WHISPER = Family(
    "whisper", lambda model_type, architectures: model_type == "whisper",
    (GraphPart("encoder", "encoder_model.onnx", sliced_positions=True, cpu_int8=ENCODER_CPU_INT8,
               attention_heads="encoder_attention_heads"),
     GraphPart("decoder", "decoder_model.onnx", False, cpu_int8=DECODER_CPU_INT8, token_head="first",
               attention_heads="decoder_attention_heads"),
     GraphPart("decoder_with_past", "decoder_with_past_model.onnx", False, cpu_int8=DECODER_CPU_INT8, token_head="next",
               attention_heads="decoder_attention_heads")),
    _whisper_front_end,
    None,
)
#: Moonshine: an encoder whose length follows the audio's (raw samples in, no 30 s window), a decoder for the first
#: token and one with a KV cache, as Optimum exports it. The decoders take no calibration, as Whisper's; on a CPU
#: they take int8 weights with activations quantized per call, and the encoder as Whisper's: the measurement decides
#: (Moonshine base keeps it int8, tiny.en fp32: docs/results/2026-12-06-int8-encoder.md). A recording past one input's length
#: (MOONSHINE_MAX_INPUT_S) is read a voice-activity segment at a time (runtime/moonshine.py).
MOONSHINE = Family(
    "moonshine", lambda model_type, architectures: model_type == "moonshine",
    (GraphPart("encoder", "encoder_model.onnx", cpu_int8=ENCODER_CPU_INT8),
     GraphPart("decoder", "decoder_model.onnx", False, cpu_int8=DECODER_CPU_INT8),
     GraphPart("decoder_with_past", "decoder_with_past_model.onnx", False, cpu_int8=DECODER_CPU_INT8)),
    lambda config: MoonshineFrontEnd(),
    None,
)
#: The longest audio a Moonshine engine reads in one pass (its training segments were at most about 30 s).
MOONSHINE_MAX_INPUT_S = 30.0


def moonshine_frames(samples: int) -> int:
    """The encoder's output frames for `samples` of audio: its three convolutions (kernel/stride 127/64, 7/3, 3/2)."""
    frames = samples
    for kernel, stride in ((127, 64), (7, 3), (3, 2)):
        frames = (frames - kernel) // stride + 1 if frames >= kernel else 0
    return frames


#: The length of the audio mask Moonshine's decoders take (as long as the audio: the decoder reads every 384th value,
#: a stride the export fixes), named apart from the encoder's output length it shares a name with in Optimum's export.
MOONSHINE_AUDIO_LENGTH = "audio_sequence_length"
#: The fewest samples that give Moonshine's encoder an output frame (56 ms at 16 kHz).
MOONSHINE_MIN_SAMPLES = 127 + 64 * (7 - 1 + 3 * (3 - 1))
#: The greedy head's outputs on Whisper's decoders (engines/passes/token_head.py writes them, runtime/whisper.py reads them).
NEXT_TOKEN, NEXT_TOKEN_LOGPROB, NO_SPEECH_LOGPROB = "next_token", "next_token_logprob", "no_speech_logprob"
#: The screened head's input (engines/passes/screened_head.py): whether this step also returns the full logits.
LOGITS_WANTED = "logits_wanted"
#: Samples per CTC output frame: the wav2vec2 family's convolutional encoder strides 5 * 2**6 (streaming chunks fall
#: on frame edges, runtime/ctc_stream.py).
CTC_FRAME_HOP = 320
#: The fewest samples that give a CTC output frame: the convolutional encoder's receptive field (25 ms at 16 kHz).
CTC_MIN_SAMPLES = 400
FAMILIES: dict[str, Family] = {family.name: family for family in (CTC, WHISPER, MOONSHINE)}


def family_of(model_type: str, architectures: list[str]) -> Family | None:
    """The family a model with this config belongs to, or None."""
    return next((family for family in FAMILIES.values() if family.is_member(model_type, architectures)), None)

