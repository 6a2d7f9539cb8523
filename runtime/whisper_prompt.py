"""Which tokens start a Whisper decode: the language (forced, or detected from the audio) and the task, as
transformers' `generate` chooses them (`WhisperGenerationMixin._retrieve_init_tokens`, transformers 4.57).

- No language and no task asked: the start token, then the generation config's `forced_decoder_ids` (multilingual
  checkpoints name an open language slot and `<|transcribe|>` there; English-only ones `<|notimestamps|>`).
- A language asked: its token in the slot; no task asked: `<|transcribe|>` unless a task token is there already.
- A task asked: the start token, the language (asked or detected), the task's token.
- A multilingual model whose language slot stays open detects it: one decoder step from the start token, the most
  likely language token (the others masked) — its probability, over the language tokens only, as openai-whisper
  reports it.
- Then `<|notimestamps|>` is added where the decode writes no timestamps, and removed where it does (long-form).

Engines built before the manifest carried `forced_start` (format 2 without it) start as their `prompt` says."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class LanguageError(ValueError):
    """A language or task the model does not have."""


@dataclass(frozen=True)
class PromptRules:
    """The manifest's start settings: the start token, the forced tokens after it (None: the language slot), the
    language tokens by code (`en`, as `<|en|>` in the vocabulary) and the task tokens by name."""

    start_id: int
    forced: tuple[int | None, ...]
    languages: dict[str, int]
    tasks: dict[str, int]
    no_timestamps_id: int

    @classmethod
    def from_settings(cls, settings: dict) -> PromptRules:
        prompt = settings["prompt"]
        forced = settings.get("forced_start", prompt[1:])
        languages = {token.strip("<|>"): token_id for token, token_id in settings.get("languages", {}).items()}
        return cls(prompt[0], tuple(forced), languages, dict(settings.get("tasks", {})), settings["no_timestamps_id"])

    def checked(self, language: str | None, task: str | None) -> tuple[str | None, str | None]:
        """The language and task as the prompt takes them; one line refusing one this model has no token for. An
        English-only model takes `en` and `transcribe` as saying nothing (transformers refuses them; clients of the
        servers send them by habit)."""
        if not self.languages:
            language = None if language is not None and language.lower() in ("en", "english") else language
            task = None if task == "transcribe" else task
        if language is not None and self.language_id(language) is None:
            known = ", ".join(sorted(self.languages)) or "none: it is English-only"
            raise LanguageError(f"language {language!r}: this model's languages are {known}")
        if task is not None and task not in self.tasks:
            known = ", ".join(sorted(self.tasks)) or "none: it is English-only and transcribes only"
            raise LanguageError(f"task {task!r}: this model's tasks are {known}")
        return language, task

    def language_id(self, language: str) -> int | None:
        return self.languages.get(language.lower().strip("<|>"))

    def needs_detection(self, language: str | None, task: str | None) -> bool:
        """Whether the language must be read off the audio first (an open slot on a multilingual model)."""
        head = [self.start_id, *self.forced] if language is None and task is None else [self.start_id]
        return language is None and bool(self.languages) and (len(head) <= 1 or head[1] is None)

    def prompt(self, language: str | None, task: str | None, detected: int | None, timestamps: bool) -> list[int]:
        """The tokens that start the decode; `detected`: the language token read off the audio, if it was."""
        tokens: list[int | None] = [self.start_id, *self.forced] if language is None and task is None else [self.start_id]
        chosen = self.language_id(language) if language is not None else detected
        if chosen is not None:
            tokens[1:2] = [chosen]
        if task is not None:
            tokens.append(self.tasks[task])
        elif language is not None and self.tasks and not set(tokens) & set(self.tasks.values()):
            tokens.append(self.tasks["transcribe"])
        if not timestamps and tokens[-1] != self.no_timestamps_id:
            tokens.append(self.no_timestamps_id)
        elif timestamps and tokens[-1] == self.no_timestamps_id:
            tokens.pop()
        return [token for token in tokens if token is not None]

    def length(self, language: str | None, task: str | None, timestamps: bool) -> int:
        """How many tokens `prompt` gives, whichever language is detected."""
        return len(self.prompt(language, task, next(iter(self.languages.values()), None), timestamps))

    def detect(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's language token and its probability among the language tokens, from the logits the decoder
        gives the start token ([batch, vocabulary])."""
        ids = np.fromiter(self.languages.values(), np.int64)
        scores = np.asarray(logits, np.float64)[:, ids]
        best = scores.argmax(axis=-1)  # the first on ties, as torch's argmax over the masked logits
        shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return ids[best], shifted[np.arange(len(best)), best] / shifted.sum(axis=-1)

    def code(self, token_id: int) -> str | None:
        return next((code for code, known in self.languages.items() if known == token_id), None)
