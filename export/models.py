"""Which models the pipeline knows by short name, and what kind of speech model a checkpoint is."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from asr_engines.families import family_of

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
    "moonshine-tiny": "UsefulSensors/moonshine-tiny",
    "moonshine-base": "UsefulSensors/moonshine-base",  # offline: `make models/moonshine-base` (export/moonshine_cpp.py)
}


class ModelError(ValueError):
    """A model that cannot be fetched, or is not a speech model of a family this pipeline knows."""


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: the name it goes by in file names, where it loads from, and its family."""

    name: str
    location: str
    family: str  # a key of asr_engines.families.FAMILIES


def resolve_model(model: str) -> ModelSource:
    """Map an alias, Hub id, local folder or `random:<architecture>` to a ModelSource, reading only its config.

    Raises ModelError with one line: an unknown random architecture, a folder without config.json, a name that
    is neither an alias nor a Hub id (with the aliases it resembles), a Hub id with no Hub to fetch it from
    (found in a second, not after the Hub client's retries), a model that is not a CTC or Whisper one.
    """
    if model.startswith("random:"):
        from asr_engines.export.random_models import ARCHITECTURES, random_checkpoint

        architecture = model.removeprefix("random:")
        if architecture not in ARCHITECTURES:
            raise ModelError(f"no random architecture {architecture!r}; choose from "
                             f"{', '.join('random:' + name for name in ARCHITECTURES)}")
        folder = random_checkpoint(architecture)
        return ModelSource(folder.name, str(folder), "ctc")
    location = ALIASES.get(model, model)
    local = Path(location)
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelError(f"{local}: no config.json; a local model is a Hugging Face checkpoint folder (config.json, "
                             "weights, processor files)")
        try:
            config = _config(location)
        except (OSError, ValueError, KeyError) as error:  # a truncated config.json, a model_type transformers lacks
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ModelError(f"{local / 'config.json'}: transformers cannot read it ({first_line[:200]})") from None
        return ModelSource(model if model in ALIASES else local.name, location, _family(location, config))
    if "/" not in location:
        close = difflib.get_close_matches(model, ALIASES, n=3, cutoff=0.6)
        raise ModelError(f"{model!r} is no alias, folder or Hub id (org/name)" + (f"; did you mean {', '.join(close)}?" if close else "")
                         + f" Aliases: {', '.join(ALIASES)}")
    name = model if model in ALIASES else location.rsplit("/", 1)[-1]
    return ModelSource(name, location, _family(location, _hub_config(location)))


def _config(location: str, **options):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(location, **options)


def _hub_config(location: str):
    """The config from the local Hub cache if it is there, else from the Hub, refused at once when it is unreachable."""
    try:
        return _config(location, local_files_only=True)
    except (OSError, ValueError):
        pass
    if not hub_reachable():
        raise ModelError(f"cannot fetch {location!r}: the Hugging Face Hub is not reachable from here (offline). "
                         "random:wav2vec2-base and local checkpoint folders work offline")
    try:
        return _config(location)
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"cannot fetch {location!r}: unknown id, private, or no config.json there ({first_line[:200]})") from None


def hub_reachable(timeout_s: float = 2.0) -> bool:
    """One short probe of the Hub (HF_HUB_OFFLINE=1 means no), instead of the Hub client's retries."""
    import os
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    host, _, port = endpoint.partition(":")
    try:
        with socket.create_connection((host, int(port or 443)), timeout=timeout_s):
            return True
    except OSError:
        return False


def _family(location: str, config) -> str:
    family = family_of(config.model_type, list(config.architectures or []))
    if family is not None:
        return family.name
    raise ModelError(
        f"{location!r} is a {config.model_type!r} model with architectures {config.architectures}; "
        "this pipeline takes CTC (…ForCTC), Whisper and Moonshine speech-recognition models"
    )
