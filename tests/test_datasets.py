import json

import pytest
import soundfile

from asr_engines.calibration.datasets import DatasetError, dataset_fingerprint, load_dataset


def test_bundled_set_is_the_studys_70_utterances(utterances):
    assert len(utterances) == 70
    assert utterances[0].id == "3752-4944-0000" and utterances[0].text.startswith("CAPTAIN FRERE")
    seconds = sum(soundfile.info(u.audio_path).duration for u in utterances)
    assert abs(seconds - 328.3) < 0.5


def test_jsonl_and_csv_manifests(tmp_path, utterances):
    rows = [{"audio": str(u.audio_path), "text": u.text} for u in utterances[:3]]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    (tmp_path / "m.csv").write_text("audio,text\n" + "".join(f"{r['audio']},{r['text']}\n" for r in rows))
    for manifest in ("m.jsonl", "m.csv"):
        loaded = load_dataset(tmp_path / manifest)
        assert [u.text for u in loaded] == [u.text for u in utterances[:3]]
        assert loaded[0].load().shape[0] > 0


def test_bad_datasets_say_what_is_wrong(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset"):
        load_dataset(tmp_path / "nothing")
    (tmp_path / "m.jsonl").write_text('{"text": "no audio"}\n')
    with pytest.raises(DatasetError, match="row 1 needs 'audio'"):
        load_dataset(tmp_path / "m.jsonl")
    (tmp_path / "x" ).mkdir()
    (tmp_path / "x" / "1-2.trans.txt").write_text("1-2-0000 HELLO\n")
    with pytest.raises(DatasetError, match="no audio file for 1-2-0000"):
        load_dataset(tmp_path / "x")


def test_fingerprint_changes_with_the_data(utterances):
    assert dataset_fingerprint(utterances[:2]) != dataset_fingerprint(utterances[1:3])
    assert dataset_fingerprint(utterances[:2]) == dataset_fingerprint(utterances[:2])
