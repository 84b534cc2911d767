"""The served graph's windows and answer choice against run_squad's Python path, on
the same logits: integer logits force ties among starts, ends and span scores, so the
tie-breaking of both (lower position first; the first candidate in window, start,
end order) must agree, across window settings that give one to many windows."""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.data.squad_data import SquadExample
from keras_bert_app.data.squad_features import squad_features
from keras_bert_app.export.squad_graph import (SquadGraphSettings, best_answers,
                                               char_offsets, squad_windows)
from keras_bert_app.text.tokenizer import BertTokenizer
from keras_bert_app.training.squad_predictions import squad_predictions
from tests.helpers import SHAKESPEARE_VOCAB

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer(SHAKESPEARE_VOCAB, lower_case=True)


@pytest.fixture(scope="module")
def examples():
    with open(os.path.join(REPO, "demo_data", "shakespeare.txt"), encoding="utf-8") as f:
        contexts = [s.strip() for s in f.read().split("\n\n") if s.strip()][20:32]
    contexts[0] = "Ünïcödé ÇAFÉ 東京 emoji 😀 x\u0301y " + contexts[0]
    contexts[1] = "\u200b\u0007 "  # no piece
    contexts[2] = "Ελληνικά: ΣΟΦΟΣ σοφός, Straße — ﬁne İstanbul 한국어 " + contexts[2]
    contexts[3] = "a"
    questions = ["who is the king of it?", "", "Ünï?", "a b c d e f g h i j k l m n", "x"]
    return [SquadExample(qid=f"q{i}", question=questions[i % 5], context=c, answers=(),
                         is_impossible=False, title="", has_gold=False)
            for i, c in enumerate(contexts)]


@pytest.mark.parametrize("length,stride,query,answer,n_best", [
    (32, 6, 8, 5, 6), (16, 20, 4, 3, 2), (24, 1, 10, 30, 20), (40, 7, 3, 1, 1)])
@pytest.mark.parametrize("seed", [0, 1])
def test_graph_answers_equal_the_python_path_on_tied_logits(
        tokenizer, examples, length, stride, query, answer, n_best, seed):
    settings = SquadGraphSettings(length, stride, query, answer, n_best, True, 0.0)
    features = squad_features(examples, tokenizer, length, stride, query)
    rng = np.random.default_rng(seed)
    starts = np.round(rng.normal(size=(len(features), length)))  # many ties
    ends = np.round(rng.normal(size=(len(features), length)))
    _, nbest, null_odds = squad_predictions(examples, features, starts, ends, n_best,
                                            answer, True, 0.0)

    contexts = tf.constant([e.context for e in examples])
    query_ids = tokenizer.tokenize_pieces(
        tf.constant([e.question for e in examples]))[:, :query]
    ids, byte_starts, byte_limits = [
        t.merge_dims(1, 2) for t in tokenizer.tokenize_with_offsets(contexts)]
    windows = squad_windows(query_ids, ids, settings, tokenizer.special_ids)
    width = int(windows[names.INPUT_WORD_IDS].shape[1])
    for key in names.ENCODER_INPUTS:
        np.testing.assert_array_equal(windows[key].numpy(), np.stack(
            [getattr(f, key)[:width] for f in features]), err_msg=key)
    np.testing.assert_array_equal(windows["max_context"].numpy(),
                                  np.stack([f.max_context[:width] for f in features]))
    best = best_answers(tf.constant(starts[:, :width], tf.float32),
                        tf.constant(ends[:, :width], tf.float32), windows,
                        len(examples), settings)
    char_starts, char_ends = char_offsets(contexts, byte_starts, byte_limits)
    char_starts, char_ends = char_starts.flat_values.numpy(), char_ends.flat_values.numpy()
    answered = 0
    for i, example in enumerate(examples):
        expected = next((e for e in nbest[example.qid] if e["text"]), None)
        assert bool(best["has_span"][i]) == (expected is not None), example.qid
        span_score = float(best["span_score"][i]) if expected else 0.0
        assert float(best["null_score"][i]) - span_score == null_odds[example.qid]
        if expected:
            answered += 1
            first, last = int(best["start_piece"][i]), int(best["end_piece"][i])
            assert (char_starts[first], char_ends[last]) == (
                expected["start_char"], expected["end_char"]), example.qid
            assert span_score == expected["start_logit"] + expected["end_logit"]
    if n_best > 1:  # (with one start and one end, most questions have no valid span)
        assert answered >= len(examples) // 2


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
