"""Random-weight checkpoints of real architectures, made locally from a config.

Speed, memory and energy do not depend on the weights, so `random:wav2vec2-base` measures the real
compute of wav2vec2-base where the Hub cannot be reached (CI, this project's machines). WER is
meaningless for them (about 100 %). The vocabulary is wav2vec2-base-960h's 32 English characters.
"""

from __future__ import annotations

import json
from pathlib import Path

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "random-models"
#: English CTC vocabulary of facebook/wav2vec2-base-960h, in id order.
CTC_VOCABULARY = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"]
ARCHITECTURES = {
    "wav2vec2-base": {},
    "wav2vec2-large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                       "intermediate_size": 4096, "do_stable_layer_norm": True, "feat_extract_norm": "layer"},
}


def random_checkpoint(architecture: str, cache: Path = CACHE, seed: int = 0, **overrides) -> Path:
    """A folder holding a random `Wav2Vec2ForCTC` of `architecture` (plus overrides) and its processor."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, Wav2Vec2Processor

    if architecture not in ARCHITECTURES:
        raise ValueError(f"no random architecture {architecture!r}; choose from {', '.join(ARCHITECTURES)}")
    settings = {**ARCHITECTURES[architecture], **overrides, "vocab_size": len(CTC_VOCABULARY)}
    suffix = "" if not overrides else "-" + "-".join(f"{key}{value}" for key, value in sorted(overrides.items()))
    folder = cache / f"{architecture}-random{suffix}"
    if (folder / "model.safetensors").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    Wav2Vec2ForCTC(Wav2Vec2Config(**settings)).save_pretrained(folder)
    vocab_file = folder / "vocab.json"
    vocab_file.write_text(json.dumps({token: index for index, token in enumerate(CTC_VOCABULARY)}))
    processor = Wav2Vec2Processor(
        feature_extractor=Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False),
        tokenizer=Wav2Vec2CTCTokenizer(str(vocab_file)),
    )
    processor.save_pretrained(folder)
    return folder
