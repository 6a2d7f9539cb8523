"""Multilingual Whisper: the language detected or forced and the task chosen as transformers' `generate` does
(runtime/whisper_prompt.py), token for token, on a random-weight model with the multilingual token layout (99
languages from id 50259, `<|translate|>` 50358, `<|transcribe|>` 50359, `<|notimestamps|>` 50363). The quick
tests decode with tiny.en's tokenizer files as a stand-in (only token ids are compared); the slow one builds the
real multilingual tokenizer from openai-whisper's files and checks that layout and its text against it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from asr_engines.features import WhisperFrontEnd
from asr_engines.runtime.whisper_prompt import LanguageError, PromptRules
from tests.conftest import WHISPER_FILES

START, EOS, TRANSLATE, TRANSCRIBE, NO_TIMESTAMPS = 50258, 50257, 50358, 50359, 50363


def multilingual_generation() -> dict:
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    codes = [code for code in LANGUAGES if code != "yue"]  # Whisper tiny to large-v2: 99 languages
    return {"decoder_start_token_id": START, "eos_token_id": EOS, "pad_token_id": EOS, "bos_token_id": EOS,
            "is_multilingual": True, "lang_to_id": {f"<|{code}|>": 50259 + index for index, code in enumerate(codes)},
            "task_to_id": {"translate": TRANSLATE, "transcribe": TRANSCRIBE}, "no_timestamps_token_id": NO_TIMESTAMPS,
            "forced_decoder_ids": [[1, None], [2, TRANSCRIBE]], "begin_suppress_tokens": [220, EOS],
            "suppress_tokens": [1, 2, 7, 8, 9, 10, 14, 25], "max_initial_timestamp_index": 50, "prev_sot_token_id": 50361,
            "return_timestamps": False, "max_length": 16}  # random weights rarely say end-of-text: keep decoding short


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory):
    """A random two-layer multilingual Whisper, exported and built (fp32), beside its transformers model."""
    if not (WHISPER_FILES / "tokenizer.json").is_file():
        pytest.skip(f"tokenizer files are needed from {WHISPER_FILES}")
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from asr_engines.engines.backends import make_builder
    from asr_engines.engines.build import build_engines
    from asr_engines.export import export_onnx, resolve_model

    folder = tmp_path_factory.mktemp("multilingual") / "tiny-multilingual"
    config = WhisperConfig(vocab_size=51865, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=80,
                           decoder_start_token_id=START, eos_token_id=EOS, pad_token_id=EOS, bos_token_id=EOS)
    torch.manual_seed(1)
    model = WhisperForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    # The runtime only decodes text with the tokenizer; tiny.en's files stand in (no multilingual one is reachable
    # here), the token ids compared below are the multilingual layout's.
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "added_tokens.json",
                 "special_tokens_map.json", "preprocessor_config.json", "normalizer.json"):
        shutil.copyfile(WHISPER_FILES / name, folder / name)
    (folder / "generation_config.json").write_text(json.dumps(multilingual_generation()))
    onnx_dir = folder.parent / "onnx"
    export_onnx(resolve_model(str(folder)), onnx_dir)
    (manifest,) = build_engines(onnx_dir, folder.parent / "engines", make_builder("onnxruntime"), ["fp32"], progress=False)
    return WhisperForConditionalGeneration.from_pretrained(folder).eval(), manifest


def generated(model, audio: np.ndarray, **options) -> list[int]:
    """transformers' greedy tokens after the prompt, end-of-text dropped."""
    import torch

    features = torch.from_numpy(WhisperFrontEnd()(audio)["input_features"])
    with torch.inference_mode():
        sequence = model.generate(features, num_beams=1, do_sample=False, **options)[0].tolist()
    if sequence and sequence[0] == START:  # the prompt comes back too on some paths
        sequence = sequence[sequence.index(NO_TIMESTAMPS) + 1:]
    return sequence[:-1] if sequence and sequence[-1] == EOS else sequence


@pytest.mark.parametrize("options", [{}, {"language": "fr"}, {"task": "translate"}, {"language": "de", "task": "translate"}],
                         ids=["detected", "forced-fr", "translate-detected", "translate-de"])
def test_multilingual_tokens_match_transformers_generate(multilingual, utterances, options):
    import torch

    from asr_engines import load_recognizer

    model, manifest = multilingual
    with load_recognizer(manifest, threads=1, trim_margin_s=None, **options) as recognizer:
        for utterance in utterances[:2]:
            audio = utterance.load()
            expected = generated(model, audio, **options)
            assert recognizer.generate(audio) == expected and expected
            recognition = recognizer.recognize(audio)
            if "language" in options:
                assert (recognition.language, recognition.language_probability) == (options["language"], None)
            else:
                features = torch.from_numpy(WhisperFrontEnd()(audio)["input_features"])
                (detected,) = model.detect_language(features).tolist()
                assert recognition.language == PromptRules.from_settings(recognizer.manifest.decoder).code(detected)
                assert 0 < recognition.language_probability <= 1


def test_each_row_of_a_batch_detects_its_own_language(multilingual, utterances):
    from asr_engines import load_recognizer

    model, manifest = multilingual
    audios = [utterance.load() for utterance in utterances[:3]]
    with load_recognizer(manifest, threads=1, trim_margin_s=None) as recognizer:
        batch = recognizer.decode_batch(audios)
        alone = [recognizer.decode_batch([audio])[0] for audio in audios]
    assert [(row.tokens, row.language) for row in batch] == [(row.tokens, row.language) for row in alone]
    assert all(row.language is not None for row in batch)


@pytest.mark.parametrize("forced", [[[1, None], [2, TRANSCRIBE]], None, [[1, None]]], ids=["tiny", "none", "slot-only"])
@pytest.mark.parametrize("language,task", [(None, None), ("fr", None), (None, "translate"), ("ja", "transcribe")])
@pytest.mark.parametrize("timestamps", [False, True])
def test_prompts_are_transformers_init_tokens(forced, language, task, timestamps):
    """Every combination against transformers' own rule (`_retrieve_init_tokens`), detection fixed to <|ko|>."""
    import torch
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    from asr_engines.engines.assets import forced_start

    settings = multilingual_generation() | {"forced_decoder_ids": forced, "return_timestamps": timestamps}
    config = GenerationConfig(**settings)
    if language is not None:
        config.language = language
    if task is not None:
        config.task = task
    model = WhisperForConditionalGeneration(WhisperConfig(d_model=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=1,
                                                          decoder_attention_heads=1, encoder_ffn_dim=8, decoder_ffn_dim=8))
    korean = settings["lang_to_id"]["<|ko|>"]
    model.detect_language = lambda **_: torch.tensor([korean])
    expected = model._retrieve_init_tokens(torch.zeros(1, 80, 3000), 1, config, model.config, 3000, {})[0]

    rules = PromptRules.from_settings({"prompt": [START], "forced_start": forced_start(settings, {}),
                                       "languages": settings["lang_to_id"], "tasks": settings["task_to_id"],
                                       "no_timestamps_id": NO_TIMESTAMPS})
    language, task = rules.checked(language, task)
    detected = korean if rules.needs_detection(language, task) else None
    assert rules.prompt(language, task, detected, timestamps) == list(expected)


def test_a_language_or_task_the_model_lacks_is_refused_in_one_line(multilingual, tiny_whisper_engines, tiny_engines):
    from asr_engines import load_recognizer

    _, manifest = multilingual
    with pytest.raises(LanguageError, match="language 'xx': this model's languages are af, am, ar"):
        load_recognizer(manifest, language="xx")
    with pytest.raises(LanguageError, match="task 'summarize': this model's tasks are transcribe, translate"):
        load_recognizer(manifest, task="summarize")
    english_only = tiny_whisper_engines / "tiny-whisper-fp32.json"
    with pytest.raises(LanguageError, match="language 'fr': this model's languages are none: it is English-only"):
        load_recognizer(english_only, language="fr")
    with load_recognizer(english_only, language="en", task="transcribe") as recognizer:  # what clients send by habit
        assert recognizer.recognize(np.zeros(16000, np.float32)).language is None
    ctc = next(tiny_engines.glob("*-fp32.json"))
    with pytest.raises(ValueError, match="an English-only CTC model; it takes no other language or task"):
        load_recognizer(ctc, task="translate")


#: openai-whisper's source release: its multilingual.tiktoken is the BPE every multilingual Whisper checkpoint's
#: tokenizer is made from (fetched once into .cache/wheels, hash-checked, in the slow test only).
OPENAI_WHISPER, OPENAI_WHISPER_SHA256 = "openai_whisper-20250625.tar.gz", "37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96"
MULTILINGUAL_TIKTOKEN_SHA256 = "b34b360dbb493e781e479794586d661700670d65564001f23024971d1f2fa126"


def multilingual_tokenizer(folder):
    """Whisper's multilingual tokenizer from openai-whisper's own files: the byte-level BPE of multilingual.tiktoken
    (merges recovered from the ranks, as transformers' TikTokenConverter does), then its special tokens in
    openai-whisper's order (the end of text at 50257, the start at 50258, 99 languages, the tasks, the timestamps)."""
    import base64
    import hashlib
    import subprocess
    import sys
    import tarfile

    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    sdist = folder / OPENAI_WHISPER
    if not sdist.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        fetched = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                                  "-d", str(folder), "openai-whisper==20250625"], capture_output=True, text=True)
        if fetched.returncode != 0:
            pytest.skip(f"openai-whisper's source is not reachable on the package registry: {fetched.stderr.strip()[-200:]}")
    assert hashlib.sha256(sdist.read_bytes()).hexdigest() == OPENAI_WHISPER_SHA256
    with tarfile.open(sdist) as archive:
        data = archive.extractfile("openai_whisper-20250625/whisper/assets/multilingual.tiktoken").read()
    assert hashlib.sha256(data).hexdigest() == MULTILINGUAL_TIKTOKEN_SHA256
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in data.decode().splitlines())}
    byte_encoder = bytes_to_unicode()
    text = lambda piece: "".join(byte_encoder[byte] for byte in piece)  # noqa: E731
    merges = sorted(((left, right, rank) for piece, rank in ranks.items() for cut in range(1, len(piece))
                     for left, right in [(piece[:cut], piece[cut:])] if left in ranks and right in ranks),
                    key=lambda merge: (merge[2], ranks[merge[0]], ranks[merge[1]]))
    tokenizer = Tokenizer(BPE({text(piece): rank for piece, rank in ranks.items()},
                              [(text(left), text(right)) for left, right, _ in merges], fuse_unk=False, ignore_merges=True))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|startoftranscript|>", *[f"<|{code}|>" for code in list(LANGUAGES)[:99]],
                "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>",
                *[f"<|{index * 0.02:.2f}|>" for index in range(1501)]]
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in specials])
    return tokenizer


@pytest.mark.slow
def test_the_multilingual_tokenizer_has_the_layout_the_engines_decode_with(multilingual, tmp_path, utterances):
    """The real multilingual tokenizer (from openai-whisper's files) beside the engine: every language and task token
    at the id the generation config and the decoder use, and text in other languages written back as it was."""
    from pathlib import Path

    from asr_engines import load_recognizer
    from asr_engines.files import sha256_file

    tokenizer = multilingual_tokenizer(Path(__file__).resolve().parent.parent / ".cache" / "wheels")
    generation = multilingual_generation()
    assert tokenizer.get_vocab_size() == 51865
    assert {code: tokenizer.token_to_id(code) for code in generation["lang_to_id"]} == generation["lang_to_id"]
    named = ("<|endoftext|>", "<|startoftranscript|>", "<|translate|>", "<|transcribe|>", "<|notimestamps|>")
    assert [tokenizer.token_to_id(token) for token in named] == [EOS, START, TRANSLATE, TRANSCRIBE, NO_TIMESTAMPS]
    _, manifest = multilingual
    engine = tmp_path / "engine"
    shutil.copytree(manifest.parent, engine)
    tokenizer.save(str(engine / json.loads(manifest.read_text())["decoder"]["tokenizer"]))
    data = json.loads((engine / manifest.name).read_text())
    data["files_sha256"][data["decoder"]["tokenizer"]] = sha256_file(engine / data["decoder"]["tokenizer"])  # not the stand-in's
    (engine / manifest.name).write_text(json.dumps(data))
    with load_recognizer(engine / manifest.name, threads=1, trim_margin_s=None, language="fr") as recognizer:
        for sentence in ("Bonjour à tous, ça va très bien.", "Добрый день", "日本語のテキスト", " Hello world"):
            ids = tokenizer.encode(sentence).ids
            assert recognizer.decode_tokens([START, generation["lang_to_id"]["<|fr|>"], TRANSCRIBE, NO_TIMESTAMPS, *ids]) \
                == sentence.strip()
        assert recognizer.transcribe(utterances[0].load()) == recognizer.decode_tokens(recognizer.generate(utterances[0].load()))
