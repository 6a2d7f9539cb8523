"""Which models the pipeline knows by short name, and what kind of speech model a checkpoint is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Short names for the study's models (arXiv 2405.01004) and their family. Any Hub id or local folder works too.
ALIASES: dict[str, str] = {
    "wav2vec2": "facebook/wav2vec2-base-960h",
    "wav2vec2-large": "facebook/wav2vec2-large-960h",
    "wav2vec2-large-lv60": "facebook/wav2vec2-large-960h-lv60-self",
    "hubert-large": "facebook/hubert-large-ls960-ft",
    "wavlm-base-plus": "patrickvonplaten/wavlm-libri-clean-100h-base-plus",
    "unispeech-sat": "microsoft/unispeech-sat-base-100h-libri-ft",
    "data2vec-audio": "facebook/data2vec-audio-base-960h",
    "whisper-tiny": "openai/whisper-tiny",
    "whisper-tiny.en": "openai/whisper-tiny.en",
    "whisper-base": "openai/whisper-base",
    "whisper-base.en": "openai/whisper-base.en",
    "whisper-small": "openai/whisper-small",
    "whisper-medium": "openai/whisper-medium",
    "distil-whisper-small.en": "distil-whisper/distil-small.en",
}


class ModelError(ValueError):
    """A model that cannot be fetched, or is not a CTC or Whisper speech model."""


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: the name it goes by in file names, where it loads from, and its family."""

    name: str
    location: str
    family: str  # "ctc" or "whisper"


def resolve_model(model: str) -> ModelSource:
    """Map an alias, Hub id, local folder or `random:<architecture>` to a ModelSource, reading only its config.

    Raises ModelError with one line when the config cannot be fetched (offline, unknown id)
    or when the model is neither a CTC nor a Whisper speech-recognition model.
    """
    from transformers import AutoConfig

    if model.startswith("random:"):
        from export.random_models import random_checkpoint

        folder = random_checkpoint(model.removeprefix("random:"))
        return ModelSource(folder.name, str(folder), "ctc")
    location = ALIASES.get(model, model)
    local = Path(location)
    name = model if model in ALIASES else (local.name if local.is_dir() else location.rsplit("/", 1)[-1])
    try:
        config = AutoConfig.from_pretrained(location)
    except OSError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(
            f"cannot fetch {location!r}: offline, unknown id, or no config.json there ({first_line})"
        ) from None
    return ModelSource(name, location, _family(location, config))


def _family(location: str, config) -> str:
    if config.model_type == "whisper":
        return "whisper"
    if any(architecture.endswith("ForCTC") for architecture in config.architectures or []):
        return "ctc"
    raise ModelError(
        f"{location!r} is a {config.model_type!r} model with architectures {config.architectures}; "
        "this pipeline takes CTC (…ForCTC) and Whisper speech-recognition models"
    )
