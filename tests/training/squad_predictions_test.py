"""Answers from logits as Google's write_predictions chooses them (n-best over windows,
max-context, max answer length, v2's null score and threshold), with the text cut from
the original context by character offsets."""

import sys

import numpy as np
import pytest

from keras_bert_app.data.squad_data import SquadExample
from keras_bert_app.data.squad_features import SquadFeature
from keras_bert_app.training.squad_predictions import squad_predictions

CONTEXT = "Rollo led the Normans in 911."
# Character spans of the context pieces, at window positions 3.. (after [CLS] q [SEP]).
PIECES = [(0, 5), (6, 9), (10, 13), (14, 21), (22, 24), (25, 28), (28, 29)]
SEQ = 12


def feature(example_index=0, window=0, max_context=True):
    spans = np.full((SEQ, 2), -1, np.int32)
    spans[3:3 + len(PIECES)] = PIECES
    flags = np.zeros(SEQ, bool)
    flags[3:3 + len(PIECES)] = max_context
    zeros = np.zeros(SEQ, np.int32)
    # [CLS] q q [SEP] 7 pieces [SEP], then one padding position (11).
    mask = (np.arange(SEQ) < 4 + len(PIECES)).astype(np.int32)
    return SquadFeature(example_index, window, zeros, mask, zeros, spans, flags)


def logits(**at):
    row = np.full(SEQ, -10.0)
    for position, value in at.items():
        row[int(position[1:])] = value
    return row


EXAMPLE = SquadExample("q1", "Who led the Normans?", CONTEXT, (("Rollo", 0),))


def test_the_best_span_is_cut_from_the_context_by_character_offsets():
    predictions, nbest, _ = squad_predictions(
        [EXAMPLE], [feature()], [logits(p3=5.0, p6=1.0)], [logits(p3=4.0, p6=2.0)])
    assert predictions == {"q1": "Rollo"}
    best = nbest["q1"][0]
    assert (best["text"], best["start_char"], best["end_char"]) == ("Rollo", 0, 5)
    assert best["start_logit"] == 5.0 and best["end_logit"] == 4.0
    assert sum(e["probability"] for e in nbest["q1"]) == pytest.approx(1.0)
    texts = [e["text"] for e in nbest["q1"]]
    assert len(texts) == len(set(texts)) and "Rollo led the Normans" in texts


def test_spans_outside_the_context_reversed_or_too_long_are_not_answers():
    # [CLS] (0) and the question (1, 2) score highest but are not context.
    starts, ends = logits(p0=9.0, p1=9.0, p8=3.0, p3=1.0), logits(p0=9.0, p2=9.0, p3=3.0,
                                                                  p9=2.0)
    predictions, nbest, _ = squad_predictions([EXAMPLE], [feature()], [starts], [ends],
                                              max_answer_length=2)
    # 8..3 is reversed, 3..9 too long for max_answer_length=2; 8..9 is "911."
    assert predictions == {"q1": "911."}
    for entry in nbest["q1"]:
        pieces = [p for p in PIECES if entry["start_char"] <= p[0] < entry["end_char"]]
        assert 1 <= len(pieces) <= 2, entry


def test_padding_takes_no_place_among_the_n_best_starts_and_ends():
    # The padding position's logits are the highest; with n_best_size=1 it would be
    # the only start and end considered, and there would be no answer. (The served
    # model pads to the longest window of a request, so padding must not count.)
    starts, ends = logits(p11=9.0, p4=2.0), logits(p11=9.0, p5=2.0)
    predictions, _, _ = squad_predictions([EXAMPLE], [feature()], [starts], [ends],
                                          n_best_size=1)
    assert predictions == {"q1": "led the"}


def test_an_answer_starts_only_in_its_max_context_window():
    other = feature(window=1, max_context=False)
    predictions, _, _ = squad_predictions(
        [EXAMPLE], [other, feature(window=0)],
        [logits(p3=9.0), logits(p6=1.0)], [logits(p3=9.0), logits(p6=1.0)])
    assert predictions == {"q1": "Normans"}


def test_v2_answers_nothing_when_the_null_score_wins_by_more_than_the_threshold():
    starts, ends = [logits(p0=3.0, p3=1.0)], [logits(p0=2.0, p3=1.5)]
    kwargs = dict(version_2_with_negative=True)
    predictions, nbest, null_odds = squad_predictions([EXAMPLE], [feature()], starts,
                                                      ends, **kwargs)
    assert null_odds == {"q1": pytest.approx(5.0 - 2.5)}
    assert predictions == {"q1": ""}
    assert nbest["q1"][0]["text"] == "" and nbest["q1"][0]["start_logit"] == 3.0
    predictions, _, _ = squad_predictions([EXAMPLE], [feature()], starts, ends,
                                          null_score_diff_threshold=3.0, **kwargs)
    assert predictions == {"q1": "Rollo"}


def test_v2_null_score_is_the_smallest_over_the_windows():
    predictions, _, null_odds = squad_predictions(
        [EXAMPLE], [feature(window=0), feature(window=1)],
        [logits(p0=5.0, p3=2.0), logits(p0=-1.0)], [logits(p0=5.0, p3=2.0), logits(p0=0.0)],
        version_2_with_negative=True)
    assert null_odds == {"q1": pytest.approx(-1.0 - 4.0)}
    assert predictions == {"q1": "Rollo"}


def test_mismatched_logits_are_refused():
    with pytest.raises(ValueError, match="2 features but 1 start"):
        squad_predictions([EXAMPLE], [feature(), feature(window=1)], [logits()],
                          [logits(), logits()])


def test_the_same_text_from_two_windows_is_listed_once():
    # Both windows score the same span "Rollo" highest.
    predictions, nbest, _ = squad_predictions(
        [EXAMPLE], [feature(window=0), feature(window=1)],
        [logits(p3=6.0, p4=1.0), logits(p3=5.0)], [logits(p3=6.0, p5=1.0), logits(p3=5.0)],
        n_best_size=3)
    texts = [e["text"] for e in nbest["q1"]]
    assert texts.count("Rollo") == 1 and texts[0] == "Rollo"
    assert len(texts) == 3


def test_v2_no_answer_takes_its_place_within_the_n_best_as_google_lists_it():
    starts, ends = [logits(p0=2.5, p3=3.0, p4=1.0)], [logits(p0=2.5, p3=3.0, p5=1.0)]
    _, nbest, _ = squad_predictions([EXAMPLE], [feature()], starts, ends, n_best_size=3,
                                    version_2_with_negative=True)
    # Totals: Rollo 6, "" 5, "Rollo led the" 4, …: the list stops at three.
    texts = [e["text"] for e in nbest["q1"]]
    assert len(texts) == 3 and texts[:2] == ["Rollo", ""]
    # Ranked below the cut, "no answer" is still appended (n + 1 entries).
    _, nbest, _ = squad_predictions([EXAMPLE], [feature()], [logits(p0=-5.0, p3=3.0,
                                                                    p4=1.0)],
                                    [logits(p0=-5.0, p3=3.0, p5=1.0)], n_best_size=3,
                                    version_2_with_negative=True)
    assert len(nbest["q1"]) == 4 and nbest["q1"][-1]["text"] == ""


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
