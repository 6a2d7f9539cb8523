"""Utterances with reference text: a LibriSpeech-layout folder or a manifest (JSONL or CSV)."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr_engines.audio import SAMPLE_RATE, load_audio

#: The study's 70 LibriSpeech dev-clean utterances (speaker 3752, chapter 4944, CC BY 4.0), bundled.
DEFAULT_DATASET = Path(__file__).resolve().parent.parent / "data" / "librispeech-3752-4944"
AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3")


class DatasetError(ValueError):
    """A dataset that cannot be read; the message says which file and why."""


@dataclass(frozen=True)
class Utterance:
    """One utterance: its id, where its audio is, and its reference transcript."""

    id: str
    audio_path: Path
    text: str

    def load(self) -> np.ndarray:
        """The audio as 16 kHz mono float32."""
        return load_audio(self.audio_path)


def load_dataset(source: str | Path = DEFAULT_DATASET) -> list[Utterance]:
    """Read a LibriSpeech-layout folder (`*.trans.txt` beside the audio) or a `.jsonl`/`.csv` manifest.

    Manifest rows need an audio path (`audio` or `path`; relative to the manifest) and `text`;
    `id` is optional. Utterances come back sorted by id, so runs are reproducible.
    """
    source = Path(source)
    if not source.exists():
        raise DatasetError(f"{source}: no such dataset folder or manifest")
    if source.is_dir():
        utterances = _librispeech_folder(source)
    elif source.suffix == ".jsonl":
        utterances = _manifest_rows(source, _jsonl_rows(source))
    elif source.suffix == ".csv":
        with source.open(newline="", encoding="utf-8") as handle:
            utterances = _manifest_rows(source, list(csv.DictReader(handle)))
    else:
        raise DatasetError(f"{source}: expected a folder with *.trans.txt, a .jsonl or a .csv manifest")
    if not utterances:
        raise DatasetError(f"{source}: no utterances found")
    return sorted(utterances, key=lambda utterance: utterance.id)


def check_dataset(utterances: list[Utterance]) -> float:
    """Decode every utterance once, so a corrupt, empty, missing or non-finite file is one line naming it before
    any measurement starts (AudioError); returns the audio's total length in seconds."""
    return sum(len(utterance.load()) for utterance in utterances) / SAMPLE_RATE


def dataset_fingerprint(utterances: list[Utterance]) -> str:
    """sha256 over ids, texts and audio bytes: two runs on the same data share it."""
    digest = hashlib.sha256()
    for utterance in utterances:
        digest.update(f"{utterance.id}\t{utterance.text}\n".encode())
        digest.update(utterance.audio_path.read_bytes())
    return digest.hexdigest()


def utterance_durations(source: str | Path = DEFAULT_DATASET) -> tuple[float, ...]:
    """Each utterance's length in seconds, read from the file headers (no decoding)."""
    import soundfile

    return tuple(soundfile.info(str(utterance.audio_path)).duration for utterance in load_dataset(source))


def _librispeech_folder(folder: Path) -> list[Utterance]:
    utterances = []
    for transcript in sorted(folder.rglob("*.trans.txt")):
        for number, line in enumerate(transcript.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utterance_id, _, text = line.strip().partition(" ")
            audio = _find_audio(transcript.parent, utterance_id)
            if audio is None:
                raise DatasetError(f"{transcript}:{number}: no audio file for {utterance_id}")
            utterances.append(Utterance(utterance_id, audio, text))
    return utterances


def _find_audio(folder: Path, stem: str) -> Path | None:
    for suffix in AUDIO_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _jsonl_rows(manifest: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetError(f"{manifest}:{number}: not JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise DatasetError(f"{manifest}:{number}: a {type(row).__name__}, not an object with 'audio' and 'text'")
            rows.append(row)
    return rows


def _manifest_rows(manifest: Path, rows: list[dict]) -> list[Utterance]:
    utterances = []
    for number, row in enumerate(rows, 1):
        audio = row.get("audio") or row.get("path")
        if not audio or "text" not in row:
            raise DatasetError(f"{manifest}: row {number} needs 'audio' (or 'path') and 'text'")
        audio_path = (manifest.parent / audio).resolve()
        utterances.append(Utterance(str(row.get("id") or audio_path.stem), audio_path, str(row["text"])))
    return utterances
