"""SQuAD windows as Google's run_squad.py makes them: window starts doc_stride pieces
apart, the max-context rule, [CLS] labels for windows without the answer, and
character offsets that cut the original context exactly."""

import os
import sys

import numpy as np
import pytest

from keras_bert_app.data.squad_data import SquadExample, read_squad
from keras_bert_app.data.squad_features import (is_max_context, squad_features,
                                                window_starts)
from tests.helpers import minilm_model_dir, require_minilm, require_shared_data


@pytest.fixture(scope="module")
def tokenizer():
    from keras_bert_app.text.tokenizer import BertTokenizer

    require_minilm()
    return BertTokenizer(os.path.join(minilm_model_dir(), "vocab.txt"), lower_case=True)


@pytest.mark.parametrize("pieces,window,stride,starts", [
    (10, 4, 3, [0, 3, 6]),     # the last window ends at the context's end
    (10, 4, 5, [0, 4, 8]),     # a stride longer than a window: no piece is skipped
    (4, 4, 2, [0]),
    (5, 4, 2, [0, 2]),
    (0, 4, 2, [0]),            # an empty context: one (empty) window
])
def test_windows_start_doc_stride_pieces_apart(pieces, window, stride, starts):
    assert window_starts(pieces, window, stride) == starts


def brute_force_max_context(starts, lengths, window, position):
    best, best_index = None, None
    for index, (start, length) in enumerate(zip(starts, lengths)):
        end = start + length - 1
        if start <= position <= end:
            score = min(position - start, end - position) + 0.01 * length
            if best is None or score > best:
                best, best_index = score, index
    return best_index == window


@pytest.mark.parametrize("pieces,window,stride", [(50, 10, 3), (37, 8, 8), (100, 16, 5)])
def test_each_piece_has_exactly_one_max_context_window(pieces, window, stride):
    starts = window_starts(pieces, window, stride)
    lengths = [min(pieces - s, window) for s in starts]
    for position in range(pieces):
        flags = [is_max_context(starts, lengths, w, position) for w in range(len(starts))]
        assert flags == [brute_force_max_context(starts, lengths, w, position)
                         for w in range(len(starts))]
        assert sum(flags) == 1


def test_a_window_is_cls_question_sep_context_sep(tokenizer):
    example = SquadExample("q", "Where is it?", "It is in Paris, France.",
                           (("Paris", 9),))
    (feature,) = squad_features([example], tokenizer, max_seq_length=32,
                                max_query_length=16, is_training=True)
    vocab = tokenizer.vocab
    used = int(feature.input_mask.sum())
    tokens = [vocab[i] for i in feature.input_word_ids[:used]]
    assert tokens == ["[CLS]", "where", "is", "it", "?", "[SEP]", "it", "is", "in",
                      "paris", ",", "france", ".", "[SEP]"]
    assert feature.input_type_ids[:used].tolist() == [0] * 6 + [1] * 8
    assert not feature.input_word_ids[used:].any()
    assert tokens[feature.start_position] == tokens[feature.end_position] == "paris"
    start, end = feature.char_spans[feature.start_position]
    assert example.context[start:end] == "Paris"  # the original casing, not "paris"
    assert (feature.char_spans[:6] == -1).all() and (feature.char_spans[13:] == -1).all()


def test_offsets_survive_lower_casing_accents_and_multi_byte_characters(tokenizer):
    context = "Café Über (1895–1943) naïve ÉCOLE"
    example = SquadExample("q", "When?", context, (("1895–1943", 11),))
    (feature,) = squad_features([example], tokenizer, max_seq_length=48,
                                max_query_length=16, is_training=True)
    start = feature.char_spans[feature.start_position][0]
    end = feature.char_spans[feature.end_position][1]
    assert context[start:end] == "1895–1943"
    pieces = [context[s:e] for s, e in feature.char_spans if s >= 0]
    # The pieces tile the original text (spaces aside), in its own casing and accents.
    assert "".join(pieces) == context.replace(" ", "")
    assert pieces[0] == "Café"


def test_a_window_without_the_whole_answer_is_labelled_at_cls(tokenizer):
    context = " ".join(f"w{i}" for i in range(60)) + " the answer is here"
    example = SquadExample("q", "Where?", context,
                           (("answer", context.index("answer")),))
    features = squad_features([example], tokenizer, max_seq_length=40, doc_stride=16,
                              max_query_length=8, is_training=True)
    assert len(features) > 2
    labelled = [f for f in features if f.start_position > 0]
    assert labelled and all(f.start_position == f.end_position for f in labelled)
    assert all(f.start_position == f.end_position == 0 for f in features
               if f not in labelled)
    # Every context piece is max-context in exactly one window.
    counts = {}
    for f in features:
        for (s, _), flag in zip(f.char_spans, f.max_context):
            if s >= 0:
                counts[s] = counts.get(s, 0) + int(flag)
    assert set(counts.values()) == {1}


def test_the_question_is_cut_to_max_query_length(tokenizer):
    example = SquadExample("q", "one two three four five six seven", "Some context.",
                           (("context", 5),))
    (feature,) = squad_features([example], tokenizer, max_seq_length=24,
                                max_query_length=3)
    assert feature.input_type_ids.tolist().index(1) == 1 + 3 + 1


def test_a_context_of_characters_the_tokenizer_drops_is_one_empty_window(tokenizer):
    # Zero-width and control characters pass the reader's "non-empty" check.
    example = SquadExample("q", "What?", "\u200b\u0007", ())
    (feature,) = squad_features([example], tokenizer, max_seq_length=16,
                                max_query_length=8)
    assert int(feature.input_mask.sum()) == 1 + 2 + 1 + 1  # [CLS] what ? [SEP] [SEP]
    assert (feature.char_spans == -1).all() and not feature.max_context.any()


def test_a_100000_word_context_becomes_windows_covering_it(tokenizer):
    context = " ".join(["word"] * 100_000)
    example = SquadExample("long", "Which word?", context, ())
    features = squad_features([example], tokenizer, max_seq_length=384, doc_stride=128)
    # 100,000 pieces; "which word?" is 3 pieces, so windows of 384 - 3 - 3 = 378
    # pieces start 128 apart.
    # The last start is 779 * 128 = 99,712, the first with start + 378 >= 100,000.
    assert len(features) == 780
    assert sum(int(f.max_context.sum()) for f in features) == 100_000


def test_real_squad_answers_are_covered_by_their_labels(tokenizer):
    path = os.path.join(require_shared_data(), "squad", "train-v1.1-subset.json")
    examples = read_squad(path)[:400]
    features = squad_features(examples, tokenizer, is_training=True)
    labelled = [f for f in features if f.start_position > 0]
    assert len({f.example_index for f in labelled}) == len(examples)
    exact = 0
    for f in labelled:
        text, start = examples[f.example_index].answers[0]
        first = f.char_spans[f.start_position][0]
        last = f.char_spans[f.end_position][1]
        assert first <= start and last >= start + len(text)  # the pieces cover it
        exact += examples[f.example_index].context[first:last] == text
    # The rest end inside a word ("Tibet" of "Tibetan"): a piece is the smallest unit.
    assert exact / len(labelled) > 0.98


def test_a_question_room_that_leaves_no_context_is_refused(tokenizer):
    example = SquadExample("q", "one two three four five six seven eight nine ten",
                           "Some context.", (("context", 5),))
    with pytest.raises(ValueError, match="max_query_length <= max_seq_length - 4"):
        squad_features([example], tokenizer, max_seq_length=8, max_query_length=64)
    with pytest.raises(ValueError, match="window_length=0"):
        window_starts(10, 0, 3)


def test_a_window_holding_only_part_of_the_answer_is_labelled_at_cls(tokenizer):
    # A 4-piece answer across the end of the first window: windows of 24 - 2 - 3 = 19
    # pieces ("which?" is 2), the answer at pieces 17-20.
    context = " ".join(["word"] * 17 + ["alpha", "beta", "gamma", "delta"] +
                       ["word"] * 20)
    start = context.index("alpha")
    example = SquadExample("q", "Which?", context,
                           (("alpha beta gamma delta", start),))
    features = squad_features([example], tokenizer, max_seq_length=24, doc_stride=8,
                              max_query_length=4, is_training=True)
    vocab = tokenizer.vocab
    for f in features:
        pieces = [vocab[i] for i, (s, _) in zip(f.input_word_ids, f.char_spans) if s >= 0]
        whole = all(w in pieces for w in ("alpha", "beta", "gamma", "delta"))
        if whole:
            assert vocab[f.input_word_ids[f.start_position]] == "alpha"
            assert vocab[f.input_word_ids[f.end_position]] == "delta"
        else:
            assert f.start_position == f.end_position == 0, pieces
    assert any("alpha" in [vocab[i] for i in f.input_word_ids] and f.start_position == 0
               for f in features)  # a window with the answer's start only


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
