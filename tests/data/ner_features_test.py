"""NER windows: the first piece of each word carries its label, long sentences go
through overlapping windows and every word is predicted exactly once, from the
window where its first piece has the most context (Google's rule)."""

import sys

import numpy as np
import pytest

from keras_bert_app import names
from keras_bert_app.data.ner_features import ner_windows, word_pieces, word_predictions
from keras_bert_app.text.tokenizer import BertTokenizer
from tests.helpers import SHAKESPEARE_VOCAB

IGNORE = names.IGNORE_LABEL_ID


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer(SHAKESPEARE_VOCAB, lower_case=True)


def test_the_first_piece_carries_the_label(tokenizer):
    words = ["Romeo", "speaks,", "quietly"]
    pieces = word_pieces([words], tokenizer)[0]
    assert [len(p) for p in pieces][1] >= 2  # "speaks," is at least speaks + ","
    windows = ner_windows([words], tokenizer, 64, 32, tag_ids=[[3, 0, 5]])
    assert len(windows) == 1
    flat = [i for p in pieces for i in p]
    n = len(flat)
    ids = windows.input_word_ids[0]
    assert ids[0] == tokenizer.special_ids[names.CLS_TOKEN]
    assert ids[1:n + 1].tolist() == flat
    assert ids[n + 1] == tokenizer.special_ids[names.SEP_TOKEN]
    assert windows.input_mask[0].sum() == n + 2 == windows.lengths[0]
    firsts = np.cumsum([0] + [len(p) for p in pieces])[:-1] + 1  # after [CLS]
    expected = np.full(64, IGNORE)
    expected[firsts] = [3, 0, 5]
    assert windows.labels[0].tolist() == expected.tolist()
    assert windows.word_at[0][firsts].tolist() == [0, 1, 2]
    assert (np.delete(windows.word_at[0], firsts) == -1).all()


def google_best_window(starts, lengths, position):
    """Google's _check_is_max_context over all windows (the first best on ties)."""
    best, best_score = None, None
    for index, (start, length) in enumerate(zip(starts, lengths)):
        end = start + length - 1
        if start <= position <= end:
            score = min(position - start, end - position) + 0.01 * length
            if best_score is None or score > best_score:
                best, best_score = index, score
    return best


def test_a_long_sentence_is_windowed_and_every_word_predicted_once(tokenizer):
    words = ("Now is the winter of our discontent made glorious summer by this sun "
             "of York; and all the clouds that lour'd upon our house").split() * 3
    tags = [[i % 4 for i in range(len(words))]]
    windows = ner_windows([words], tokenizer, 12, 4, tag_ids=tags)
    pieces = word_pieces([words], tokenizer)[0]
    flat = [i for p in pieces for i in p]
    firsts = np.cumsum([0] + [len(p) for p in pieces])[:-1]
    starts = list(range(0, len(flat) - 10 + 4, 4))
    starts = [s for s in starts if s == 0 or s - 4 + 10 < len(flat)]
    lengths = [min(len(flat) - s, 10) for s in starts]
    assert len(windows) == len(starts) > 10
    assert windows.lengths.tolist() == [n + 2 for n in lengths]
    # No piece is lost: the windows cover the sentence, in order.
    for row, (start, length) in enumerate(zip(starts, lengths)):
        assert windows.input_word_ids[row, 1:length + 1].tolist() == \
            flat[start:start + length]
    predicted_at = {}
    for row, position in zip(*np.nonzero(windows.word_at >= 0)):
        word = int(windows.word_at[row, position])
        assert word not in predicted_at  # exactly once
        predicted_at[word] = (int(row), int(position))
        # Training labels sit at every first piece of every window, predictions at
        # the max-context one.
        assert windows.labels[row, position] == tags[0][word]
    assert sorted(predicted_at) == list(range(len(words)))
    for word, (row, position) in predicted_at.items():
        assert row == google_best_window(starts, lengths, firsts[word])
        assert starts[row] + position - 1 == firsts[word]
    labelled = (windows.labels != IGNORE).sum()
    assert labelled > len(words)  # words in several windows are labelled in each


def test_predictions_read_each_words_own_position(tokenizer):
    words = "thou art more lovely and more temperate".split() * 4
    windows = ner_windows([words, ["rough"]], tokenizer, 10, 3)
    logits = np.zeros(windows.input_word_ids.shape + (5,), np.float32)
    # Each word's own max-context position votes for its index mod 5; every other
    # position (the word's other windows included) votes for tag 4.
    logits[..., 4] = 1.0
    for row, position in zip(*np.nonzero(windows.word_at >= 0)):
        word = windows.word_at[row, position]
        logits[row, position] = 0.0
        logits[row, position, word % 4] = 2.0
    result = word_predictions(windows, logits, [words, ["rough"]], outside_id=0)
    assert result == [[i % 4 for i in range(len(words))], [0]]


def test_a_word_without_pieces_gets_no_label_and_is_predicted_o(tokenizer):
    words = ["the", "\u200b", "king", "\x07"]  # zero-width space, a control character
    pieces = word_pieces([words], tokenizer)[0]
    assert [len(p) > 0 for p in pieces] == [True, False, True, False]
    windows = ner_windows([words], tokenizer, 16, 8, tag_ids=[[1, 2, 3, 4]])
    assert windows.no_piece_words == 2
    assert sorted(windows.labels[0][windows.labels[0] != IGNORE].tolist()) == [1, 3]
    logits = np.zeros(windows.input_word_ids.shape + (5,), np.float32)
    logits[..., 3] = 1.0
    assert word_predictions(windows, logits, [words], outside_id=0) == [[3, 0, 3, 0]]


def test_a_sentence_of_no_pieces_still_has_a_window(tokenizer):
    windows = ner_windows([["\u200b"]], tokenizer, 8, 4, tag_ids=[[2]])
    assert len(windows) == 1 and windows.lengths.tolist() == [2]
    assert (windows.labels == IGNORE).all()


def test_bad_window_settings_are_refused(tokenizer):
    with pytest.raises(ValueError, match="max_seq_length=2 must be at least 3"):
        ner_windows([["a"]], tokenizer, 2, 1)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
