"""Moonshine base as a Hugging Face checkpoint, made offline from the `moonshine-cpp` wheel's ONNX Runtime files.

    asr-engines convert moonshine-cpp --out models/moonshine-base    # what `make models/moonshine-base` runs

The wheel (pinned below by version and sha256) ships Moonshine base as `.ort` files whose weights are stored as
int8 with a float scale and offset each; the graphs dequantize them as `int8 * scale + offset` before use. This
reads every initializer out of the `.ort` flatbuffers (with ONNX Runtime's own schema), dequantizes the weights
the same way, names each after the graph node that consumes it (`/layers.0/self_attn/q_proj/MatMul` ->
`model.encoder.layers.0.self_attn.q_proj.weight`), loads them strictly into transformers'
`MoonshineForConditionalGeneration` (every parameter filled, nothing left over) and saves the checkpoint with its
processor: the tokenizer rebuilt from `tokenizer.bin`. docs/moonshine.md says what was checked against what.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VERSION = "0.1.4"
WHEEL = f"moonshine_cpp-{VERSION}-py3-none-manylinux2014_x86_64.whl"
WHEEL_SHA256 = "f7afc662bdd3ef98815ee3b940438b456e77d5a77cea5396ed9c572785412ebd"
#: The files read from the wheel, and their sha256 (the wheel's own RECORD lists the same files).
FILES_SHA256 = {
    "moonshine_cpp-0.1.4.data/purelib/moonshine_cpp/models/base-en/encoder_model.ort":
        "9d1a19e044cbf89a207723d1adb667de89a5671a1e3e611b8ebe721b2c31219c",
    "moonshine_cpp-0.1.4.data/purelib/moonshine_cpp/models/base-en/decoder_model_merged.ort":
        "370e0c1f161d68dc1c2264c1a82024fb123380da3b73f47f05531d1e8d3308c3",
    "moonshine_cpp-0.1.4.data/purelib/moonshine_cpp/models/base-en/tokenizer.bin":
        "04670d78994d030185c3dd843c60591788fed0a56cc6750747bd326825f13ca9",
}
#: Where the wheel is kept once fetched (ignored by git).
CACHE = Path(__file__).resolve().parent.parent / ".cache" / "wheels"
#: ONNX TensorProto data types found in the files.
DTYPES = {1: np.float32, 3: np.int8, 6: np.int32, 7: np.int64}
#: The exporter's module names -> transformers' Moonshine names.
RENAMED = {"dense": "o_proj", "up_proj": "fc1", "down_proj": "fc2"}
LINEARS = {"q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"}
BOS, EOS = 1, 2
BYTE_TOKENS = range(3, 3 + 256)  # SentencePiece's byte fallback: ids 3..258 are the bytes 0x00..0xff


class ConversionError(ValueError):
    """A wheel or file that is not the pinned one, or a graph whose weights do not map onto the architecture."""


@dataclass(frozen=True)
class OrtGraph:
    """Every initializer of an `.ort` model (subgraphs included) and every node as (op, name, inputs)."""

    tensors: dict[str, np.ndarray]
    nodes: list[tuple[str, str, list[str]]]


def read_ort(data: bytes) -> OrtGraph:
    """Parse an ONNX Runtime format model with the schema ONNX Runtime ships."""
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs.InferenceSession import InferenceSession

    tensors: dict[str, np.ndarray] = {}
    nodes: list[tuple[str, str, list[str]]] = []

    def walk(graph) -> None:
        for index in range(graph.InitializersLength()):
            tensor = graph.Initializers(index)
            dims = [tensor.Dims(axis) for axis in range(tensor.DimsLength())]
            if tensor.DataType() not in DTYPES:
                raise ConversionError(f"initializer {tensor.Name().decode()}: data type {tensor.DataType()} not expected")
            raw = tensor.RawDataAsNumpy().tobytes() if tensor.RawDataLength() else b""
            tensors[tensor.Name().decode()] = np.frombuffer(raw, DTYPES[tensor.DataType()]).reshape(dims)
        for index in range(graph.NodesLength()):
            node = graph.Nodes(index)
            inputs = [node.Inputs(position).decode() for position in range(node.InputsLength())]
            nodes.append((node.OpType().decode(), node.Name().decode(), inputs))
            for position in range(node.AttributesLength()):
                subgraph = node.Attributes(position).G()
                if subgraph is not None:
                    walk(subgraph)

    walk(InferenceSession.GetRootAs(data, 0).Model().Graph())
    return OrtGraph(tensors, nodes)


def weight(graph: OrtGraph, name: str) -> np.ndarray | None:
    """The float value of input `name` if it is a weight: an initializer, or one dequantized from int8 as the
    graph does it (Cast, Mul by `<w>_scale`, Add `<w>_zero_point`); None for activations."""
    if name.endswith("_add_tensor"):
        base = name.removesuffix("_add_tensor")
        quantized = graph.tensors[base + "_quantized"].astype(np.float32)
        return quantized * graph.tensors[base + "_scale"] + graph.tensors[base + "_zero_point"]
    value = graph.tensors.get(name)
    return value if value is not None and value.dtype == np.float32 and value.ndim >= 1 and value.size > 1 else None


def state_dict(graph: OrtGraph, prefix: str) -> dict[str, np.ndarray]:
    """transformers' parameter names -> values, from the nodes that consume weights. `prefix` is prepended to
    node paths that do not already start with `model.` (the encoder file's are relative to the encoder)."""
    found: dict[str, np.ndarray] = {}

    def put(name: str, value: np.ndarray) -> None:
        if name in found and not np.array_equal(found[name], value):  # the merged decoder's two branches share weights
            raise ConversionError(f"{name}: two different values in the graph")
        found[name] = np.ascontiguousarray(value, np.float32)

    for op, node, inputs in graph.nodes:
        parts = [RENAMED.get(part, part) for part in node.strip("/").split("/")[:-1]]
        if not parts or "rotary_emb" in parts:
            continue
        path = ".".join(parts)
        path = path if path.startswith("model.") else prefix + path
        module = parts[-1]
        values = [weight(graph, name) for name in inputs]
        operand = next((value for value in values if value is not None), None)  # Add and Mul take it either side
        if op == "MatMul" and module in LINEARS and values[1] is not None:
            put(path + ".weight", values[1].T)  # MatMul's [in, out] is Linear's [out, in] transposed
        elif op == "Add" and operand is not None and (module in LINEARS or module == "groupnorm"):
            put(path + ".bias", operand.reshape(-1))
        elif op == "Mul" and operand is not None and module.endswith("norm"):
            put(path + ".weight", operand.reshape(-1))
        elif op == "Conv":
            put(path + ".weight", values[1])
            if len(values) > 2 and values[2] is not None:
                put(path + ".bias", values[2])
        elif op == "Gather" and module == "embed_tokens":
            put(path + ".weight", values[0])
    return found


def rotary(graph: OrtGraph) -> np.ndarray:
    """The rotary embedding's inverse frequencies (the one float [1, n, 1] constant its MatMul reads)."""
    for op, node, inputs in graph.nodes:
        if op == "MatMul" and "rotary_emb" in node:
            for name in inputs:
                if name in graph.tensors and graph.tensors[name].dtype == np.float32:
                    return graph.tensors[name].reshape(-1)
    raise ConversionError("no rotary embedding found")


def config_for(weights: dict[str, np.ndarray], inv_freq: np.ndarray, head_dim: int) -> dict:
    """MoonshineConfig's settings, read off the weights' shapes and the rotary constants."""
    hidden = weights["model.decoder.embed_tokens.weight"].shape[1]
    rotary_dim = 2 * len(inv_freq)
    theta = float(inv_freq[1]) ** (-rotary_dim / 2)  # inv_freq[i] = theta ** (-2i / rotary_dim)
    factor = (rotary_dim + 0.5) / head_dim  # transformers takes int(head_dim * factor) rotary dimensions
    layers = {side: 1 + max(int(match.group(1)) for name in weights
                            if (match := re.match(rf"model\.{side}\.layers\.(\d+)\.", name)))
              for side in ("encoder", "decoder")}
    return {
        "vocab_size": weights["model.decoder.embed_tokens.weight"].shape[0], "hidden_size": hidden,
        "intermediate_size": weights["model.encoder.layers.0.mlp.fc1.weight"].shape[0],
        "encoder_num_hidden_layers": layers["encoder"], "decoder_num_hidden_layers": layers["decoder"],
        "encoder_num_attention_heads": hidden // head_dim, "decoder_num_attention_heads": hidden // head_dim,
        "encoder_num_key_value_heads": hidden // head_dim, "decoder_num_key_value_heads": hidden // head_dim,
        "partial_rotary_factor": factor, "rope_theta": round(theta), "bos_token_id": BOS, "eos_token_id": EOS,
        "decoder_start_token_id": BOS, "pad_token_id": EOS, "tie_word_embeddings": True,
    }


def head_dim(decoder: bytes) -> int:
    """The attention heads' width: the last axis of the decoder's key cache input, as ONNX Runtime reads it."""
    import onnxruntime

    session = onnxruntime.InferenceSession(decoder, providers=["CPUExecutionProvider"])
    shape = next(item.shape for item in session.get_inputs() if item.name.startswith("past_key_values"))
    if not isinstance(shape[-1], int):
        raise ConversionError("the decoder's key cache has no fixed head width")
    return shape[-1]


def pieces(data: bytes) -> list[bytes]:
    """tokenizer.bin: each token id's bytes, as a length byte then the bytes, in id order."""
    out, position = [], 0
    while position < len(data):
        length = data[position]
        out.append(data[position + 1:position + 1 + length])
        position += 1 + length
    if position != len(data):
        raise ConversionError("tokenizer.bin: truncated")
    return out


def tokenizer_for(token_bytes: list[bytes], vocab_size: int):
    """A Llama-style SentencePiece BPE tokenizer (byte fallback, `▁` for spaces) over the wheel's pieces. The merges
    are rebuilt from the vocabulary in id order (SentencePiece numbers pieces by merge rank); ids past the pieces
    up to the model's vocabulary size are reserved specials, never generated in practice."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers
    from tokenizers.models import BPE

    names = [f"<0x{index - BYTE_TOKENS.start:02X}>" if index in BYTE_TOKENS else piece.decode("utf-8")
             for index, piece in enumerate(token_bytes)]
    names += [f"<reserved_{index}>" for index in range(len(names), vocab_size)]
    vocab = {name: index for index, name in enumerate(names)}
    if len(vocab) != len(names):
        raise ConversionError("tokenizer.bin: a piece listed twice")
    merges = []
    for index, name in enumerate(names[BYTE_TOKENS.stop:len(token_bytes)], BYTE_TOKENS.stop):
        merges += [(index, vocab[name[:cut]], vocab[name[cut:]]) for cut in range(1, len(name))
                   if name[:cut] in vocab and name[cut:] in vocab]
    merges.sort()
    tokenizer = Tokenizer(BPE(vocab, [(names[left], names[right]) for _, left, right in merges],
                              unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)])
    tokenizer.add_special_tokens([AddedToken(name, special=True, normalized=False)
                                  for name in ["<unk>", "<s>", "</s>", *names[len(token_bytes):]]])
    return tokenizer


def fetch_wheel(cache: Path = CACHE) -> Path:
    """The pinned wheel in `cache`, fetched from the package registry the first time (pip, so its index and proxy
    settings apply; the x86-64 wheel on every machine, as only its weights are read), checked before it is kept."""
    import subprocess
    import sys

    wheel = cache / WHEEL
    if wheel.is_file():
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as scratch:
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                                 "--platform", "manylinux2014_x86_64", "--dest", scratch, f"moonshine-cpp=={VERSION}"],
                                capture_output=True, text=True)
        fetched = Path(scratch) / WHEEL
        if result.returncode != 0 or not fetched.is_file():
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise ConversionError(f"cannot fetch moonshine-cpp {VERSION} from the package registry: "
                                  f"{lines[-1] if lines else 'pip gave no reason'}")
        digest = hashlib.sha256(fetched.read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            raise ConversionError(f"the registry's {WHEEL} has sha256 {digest}, not the pinned {WHEEL_SHA256}; nothing kept")
        fetched.rename(wheel)
    return wheel


def read_wheel(wheel: Path) -> dict[str, bytes]:
    """The pinned files out of the pinned wheel, each checked against its sha256."""
    if not wheel.is_file():
        raise ConversionError(f"{wheel}: no such file (without a wheel named, `asr-engines convert` fetches it)")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise ConversionError(f"{wheel}: sha256 {digest}, not the pinned {WHEEL} ({WHEEL_SHA256})")
    with zipfile.ZipFile(wheel) as archive:
        files = {name: archive.read(name) for name in FILES_SHA256}
    for name, data in files.items():
        if hashlib.sha256(data).hexdigest() != FILES_SHA256[name]:
            raise ConversionError(f"{wheel}: {name} does not match its pinned sha256")
    return {Path(name).name: data for name, data in files.items()}


def convert(wheel: str | Path, out: str | Path) -> Path:
    """Write the Hugging Face checkpoint of the wheel's Moonshine base into `out` (whole or absent); returns `out`."""
    import torch
    from transformers import MoonshineConfig, MoonshineForConditionalGeneration

    files = read_wheel(Path(wheel))
    encoder, decoder = read_ort(files["encoder_model.ort"]), read_ort(files["decoder_model_merged.ort"])
    weights = {**state_dict(encoder, "model.encoder."), **state_dict(decoder, "model.decoder.")}
    settings = config_for(weights, rotary(decoder), head_dim(files["decoder_model_merged.ort"]))
    if not np.allclose(rotary(encoder), rotary(decoder)):
        raise ConversionError("the encoder's and decoder's rotary frequencies differ")
    model = MoonshineForConditionalGeneration(MoonshineConfig(**settings))
    missing, unexpected = model.load_state_dict({name: torch.from_numpy(value) for name, value in weights.items()},
                                                strict=False)
    missing = [name for name in missing if name != "proj_out.weight"]  # tied to the embedding
    if missing or unexpected:
        raise ConversionError(f"weights do not map onto MoonshineForConditionalGeneration: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}")
    source = {"wheel": WHEEL, "sha256": WHEEL_SHA256, "files_sha256": FILES_SHA256, "converter": "asr_engines.export.moonshine_cpp"}
    return write_checkpoint(model, pieces(files["tokenizer.bin"]), Path(out), source)


def write_checkpoint(model, token_bytes: list[bytes], out: Path, source: dict) -> Path:
    """Save a MoonshineForConditionalGeneration with its processor (raw 16 kHz samples, not normalised; the
    tokenizer over `token_bytes`) and `source.json` into `out`: built beside it, then renamed into place."""
    from transformers import LlamaTokenizerFast, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    model.generation_config.update(decoder_start_token_id=BOS, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=EOS)
    tokenizer = LlamaTokenizerFast(tokenizer_object=tokenizer_for(token_bytes, model.config.vocab_size),
                                   bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>",
                                   add_bos_token=False, add_eos_token=False, legacy=True)
    processor = Wav2Vec2Processor(feature_extractor=Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=False, return_attention_mask=True),
        tokenizer=tokenizer)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as scratch:
        staging = Path(scratch) / out.name
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        (staging / "source.json").write_text(json.dumps(source, indent=1) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    return out
