"""SQuAD EM/F1 as the official v1.1 and v2.0 evaluation scripts compute them, on
hand-worked cases (the scripts' quirks included: normalisation order, v1's
unanswered questions scoring 0, v2's empty answers and best thresholds)."""

import sys

import pytest

from keras_bert_app.training.squad_metrics import (f1_v1, f1_v2, normalize_answer,
                                                   squad_v1_scores, squad_v2_scores)


def article(*qas, context="A context."):
    return {"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": qid, "question": "?", "answers": [{"text": t, "answer_start": 0}
                                                  for t in golds]}
        for qid, golds in qas]}]}


@pytest.mark.parametrize("text,normalized", [
    ("The Eiffel Tower!", "eiffel tower"),
    ("  an   apple, a pear  ", "apple pear"),
    ("the-end", "theend"),          # punctuation goes before articles are matched
    ("Théâtre", "théâtre"),         # only ASCII punctuation; accents kept
    ("Rock 'n' Roll", "rock n roll"),
    ("", ""),
])
def test_answers_are_normalised_as_the_scripts_do(text, normalized):
    assert normalize_answer(text) == normalized


def test_f1_counts_shared_tokens_with_multiplicity():
    # gold: [new, york, city], predicted: [york, city, city] -> 2 shared
    assert f1_v1("York city city", "New York City") == pytest.approx(2 / 3)
    assert f1_v1("Paris", "London") == 0.0


def test_empty_answers_differ_between_v1_and_v2():
    assert f1_v1("", "") == 0.0          # v1.1: no shared token, 0
    assert f1_v2("", "") == 1.0          # v2.0: no answer against no answer
    assert f1_v2("the", "") == 1.0       # normalises to nothing
    assert f1_v2("Paris", "") == 0.0


def test_v1_takes_the_best_gold_answer_and_counts_unanswered_questions_as_zero():
    data = {"data": [article(("q1", ["Denver Broncos", "The Broncos"]),
                             ("q2", ["Santa Clara"]), ("q3", ["1858"]))]}
    scores = squad_v1_scores(data, {"q1": "Broncos", "q2": "Santa Clara, California"})
    # q1: "broncos" = normalised "the broncos" exactly; q2: F1 2/3; q3 unanswered.
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 * (2 / 3 * 1) / (2 / 3 + 1)) / 3)
    assert scores["total"] == 3 and scores["missing"] == 1


def v2_data():
    return {"data": [article(("a1", ["Rollo"]), ("a2", ["10th century", "10th"]),
                             ("n1", []), ("n2", []))]}


def test_v2_scores_answerable_and_unanswerable_questions():
    predictions = {"a1": "Rollo", "a2": "the 10th", "n1": "", "n2": "Normandy"}
    scores = squad_v2_scores(v2_data(), predictions)
    assert scores["HasAns_exact"] == 100.0 and scores["HasAns_total"] == 2
    assert scores["NoAns_exact"] == 50.0 and scores["NoAns_total"] == 2
    assert scores["exact"] == 75.0 and scores["total"] == 4
    assert scores["f1"] == 75.0
    assert "best_f1" not in scores  # only with no-answer probabilities


def test_v2_no_answer_probabilities_above_the_threshold_mean_no_answer():
    predictions = {"a1": "Rollo", "a2": "the 10th", "n1": "", "n2": "Normandy"}
    na = {"a1": 0.1, "a2": 0.9, "n1": 0.5, "n2": 0.8}
    scores = squad_v2_scores(v2_data(), predictions, na_probs=na, na_prob_thresh=0.7)
    # a2 (0.9) and n2 (0.8) become "no answer": a2 wrong, n2 right.
    assert scores["exact"] == 75.0
    assert scores["HasAns_exact"] == 50.0 and scores["NoAns_exact"] == 100.0


def test_v2_best_threshold_is_found_as_the_script_finds_it():
    predictions = {"a1": "Rollo", "a2": "wrong", "n1": "Norse", "n2": ""}
    na = {"a1": 0.1, "a2": 0.3, "n1": 0.6, "n2": 0.9}
    scores = squad_v2_scores(v2_data(), predictions, na_probs=na)
    # Start: answer nothing -> 2 (the NoAns). In increasing na: a1 +1 -> 3 (best,
    # thresh 0.1); a2 +0 -> 3; n1 answered wrongly -1 -> 2; n2 empty 0 -> 2.
    assert scores["best_exact"] == 75.0 and scores["best_exact_thresh"] == 0.1
    assert scores["best_f1"] == 75.0 and scores["best_f1_thresh"] == 0.1


def test_v2_skips_questions_without_a_prediction_and_says_how_many():
    scores = squad_v2_scores(v2_data(), {"a1": "Rollo", "n1": ""})
    assert scores["total"] == 2 and scores["exact"] == 100.0 and scores["missing"] == 2


def test_v2_needs_a_no_answer_probability_for_every_prediction():
    with pytest.raises(ValueError, match="no no-answer probability, e.g. 'n1'"):
        squad_v2_scores(v2_data(), {"a1": "Rollo", "n1": ""}, na_probs={"a1": 0.2})


def test_v2_leaves_out_a_breakdown_without_predictions():
    scores = squad_v2_scores(v2_data(), {"n1": "", "n2": ""})
    assert scores["NoAns_total"] == 2 and "HasAns_total" not in scores
    assert scores["exact"] == 100.0 and scores["missing"] == 2


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
