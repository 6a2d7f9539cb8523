import numpy as np

from asr_engines.runtime.ctc import CTCDecoder

VOCABULARY = ["<pad>", "<s>", "</s>", "<unk>", "|", "A", "B", "L", "O", "H", "E"]
decode = CTCDecoder(VOCABULARY, blank_id=0, word_delimiter="|", dropped_tokens=("<s>", "</s>", "<unk>", "<pad>"))


def one_hot(ids):
    logits = np.full((len(ids), len(VOCABULARY)), -5.0, np.float32)
    logits[np.arange(len(ids)), ids] = 5.0
    return logits


def test_repeats_merge_and_blanks_split_doubles():
    # H H E <b> L L <b> L O | A A B  ->  "HELLO AB"
    ids = [9, 9, 10, 0, 7, 7, 0, 7, 8, 4, 5, 5, 6]
    assert decode(one_hot(ids)) == "HELLO AB"


def test_delimiters_and_special_tokens_do_not_leave_spaces():
    ids = [4, 4, 1, 9, 0, 4, 0, 4, 5, 3, 4, 2]
    assert decode(one_hot(ids)) == "H A"


def test_empty_and_all_blank_inputs_give_empty_text():
    assert decode(one_hot([0, 0, 0])) == ""
    assert decode(np.zeros((0, len(VOCABULARY)), np.float32)) == ""


def test_ids_beyond_the_vocabulary_decode_to_nothing():
    # Some checkpoints pad the output layer past the tokenizer's vocabulary.
    assert decode.decode_ids(np.array([5, 40, 6])) == "AB"
