"""The engine manifest is read and checked in one place: each way it can be wrong is one line naming the file,
never a traceback; engines and recognizers close when their `with` block ends."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from asr_engines import load_engine, load_manifest, load_recognizer
from asr_engines.manifest import MANIFEST_FORMAT, EngineManifest, ManifestError, write_manifest
from asr_engines.variants import Precision, Variant


@pytest.fixture
def engine_copy(tiny_engines, tmp_path):
    for name in ("tiny-int8.json", "tiny-int8.onnx"):
        shutil.copy(tiny_engines / name, tmp_path / name)
    return tmp_path / "tiny-int8.json"


def rewrite(path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_manifest_reads_as_its_typed_fields(engine_copy):
    manifest = load_manifest(engine_copy.with_suffix(".onnx"))  # any file of the engine leads to its manifest
    assert isinstance(manifest, EngineManifest) and manifest.format == MANIFEST_FORMAT
    assert (manifest.precision, manifest.variant, manifest.graph_variant("model")) == (Precision.INT8, Variant.INT8, Variant.INT8)
    assert manifest.graph_path("model") == engine_copy.with_suffix(".onnx") and manifest.folder == engine_copy.parent
    manifest.verify_files()


def test_written_and_read_back_it_is_the_same(engine_copy, tmp_path):
    manifest = load_manifest(engine_copy)
    write_manifest(tmp_path / "again.json", manifest)
    assert load_manifest(tmp_path / "again.json") == manifest
    assert not list(tmp_path.glob(".again.json.*"))  # written through a temporary file, renamed


@pytest.mark.parametrize(("change", "message"), [
    (lambda data: data.pop("files"), "missing key 'files'"),
    (lambda data: data.update(precision=8), "precision should be Precision, not int"),
    (lambda data: data.update(variant="int4"), "variant 'int4' is none of fp32, fp16, int8, int8-qdq, int8-dynamic"),
    (lambda data: data.update(files={"model": 3}), "files should map names to strs"),
    (lambda data: data.update(files={"model": "../tiny-int8.onnx"}), "names '../tiny-int8.onnx', a file outside its folder"),
    (lambda data: data["files_sha256"].update({"/etc/passwd": "0" * 64}), "names '/etc/passwd', a file outside its folder"),
    (lambda data: data.update(format=MANIFEST_FORMAT + 1), f"format {MANIFEST_FORMAT + 1} is newer than this asr-engines reads"),
    (lambda data: data.update(format=1), "manifest format 1, this asr-engines reads"),
    (lambda data: data.pop("format"), "no manifest format number"),
    (lambda data: data.update(chunking=[20, 4]), "chunking should be dict or null, not list"),
])
def test_each_fault_is_one_line_naming_the_file(engine_copy, change, message):
    rewrite(engine_copy, change)
    with pytest.raises(ManifestError, match="^" + str(engine_copy).replace(".", r"\.")) as error:
        load_manifest(engine_copy)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_command_says_it_in_one_line(engine_copy, tiny_engines):
    rewrite(engine_copy, lambda data: data.update(format=MANIFEST_FORMAT + 1))
    audio = tiny_engines.parent  # never read: the manifest is refused first
    result = subprocess.run([sys.executable, "-m", "asr_engines", "transcribe", str(engine_copy), str(audio)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "upgrade asr-engines" in result.stderr


def test_not_json_or_not_an_object_is_one_line(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ManifestError, match="unreadable manifest"):
        load_manifest(tmp_path / "broken.json")
    with pytest.raises(ManifestError, match="not an engine manifest"):
        load_manifest(tmp_path / "list.json")


def test_engines_and_recognizers_close_with_their_block(engine_copy):
    with load_recognizer(engine_copy) as recognizer:
        assert isinstance(recognizer.transcribe(__import__("numpy").zeros(16000, "float32")), str)
    assert recognizer.engine._session is None
    with load_engine(engine_copy.with_suffix(".onnx")) as engine:
        assert engine.inputs[0].name == "input_values"
    assert engine._session is None
