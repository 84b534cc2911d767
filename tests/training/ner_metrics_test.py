"""Entity metrics by seqeval's rules: hand-worked cases where conlleval's chunks and
strict IOB2 differ, and seqeval 1.2.2 itself (when installed) on the real WNUT-17
dev tags with perturbed predictions."""

import os
import random
import sys

import pytest

from keras_bert_app.training.ner_metrics import (entities, entity_scores, flat_scores,
                                                 nested_scores)
from tests.helpers import require_shared_data


def test_an_inside_tag_after_o_starts_an_entity_only_in_the_default_mode():
    tags = ["O", "I-PER", "I-PER", "O", "B-LOC"]
    assert entities(tags) == [("PER", 1, 2), ("LOC", 4, 4)]
    assert entities(tags, strict=True) == [("LOC", 4, 4)]
    assert entities(["I-PER"]) == [("PER", 0, 0)]  # at the sentence start too
    assert entities(["I-PER"], strict=True) == []


def test_a_type_change_inside_a_chunk_ends_it():
    tags = ["B-PER", "I-PER", "I-LOC", "I-LOC", "B-LOC", "I-LOC"]
    assert entities(tags) == [("PER", 0, 1), ("LOC", 2, 3), ("LOC", 4, 5)]
    # Strict: the I-LOC after PER starts nothing, and does not continue PER.
    assert entities(tags, strict=True) == [("PER", 0, 1), ("LOC", 4, 5)]


def test_b_starts_a_new_entity_even_after_the_same_type():
    assert entities(["B-PER", "B-PER", "I-PER"]) == [("PER", 0, 0), ("PER", 1, 2)]
    assert entities(["B-PER", "B-PER", "I-PER"], strict=True) == [("PER", 0, 0),
                                                                  ("PER", 1, 2)]


def test_types_may_contain_dashes():
    assert entities(["B-creative-work", "I-creative-work", "O"]) == [
        ("creative-work", 0, 1)]


def test_iobes_tags_are_refused():
    with pytest.raises(ValueError, match="'S-PER' is not an IOB tag"):
        entities(["O", "S-PER"])
    with pytest.raises(ValueError, match="'E-PER' is not an IOB tag"):
        entities(["B-PER", "E-PER"])


def test_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "I-ORG", "O"]]
    default = entity_scores(gold, pred)
    # PER right; LOC missed (predicted ORG); ORG of sentence 2 right via I- after O.
    assert (default["precision"], default["recall"]) == (2 / 3, 2 / 3)
    assert default["per_type"] == {
        "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "ORG": {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1},
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}}
    strict = entity_scores(gold, pred, strict=True)
    assert (strict["precision"], strict["recall"]) == (1 / 2, 1 / 3)
    assert strict["f1"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))


def test_no_predicted_entities_score_zero_not_an_error():
    scores = entity_scores([["B-PER"]], [["O"]])
    assert (scores["precision"], scores["recall"], scores["f1"]) == (0.0, 0.0, 0.0)


def test_flat_scores_round_trip_to_nested():
    scores = entity_scores([["B-PER", "O", "B-LOC"]], [["B-PER", "O", "O"]])
    nested = nested_scores(flat_scores(scores))
    assert nested["f1"] == scores["f1"]
    assert nested["per_type"] == scores["per_type"]
    assert isinstance(nested["per_type"]["LOC"]["support"], int)


def wnut_dev_tags():
    path = os.path.join(require_shared_data(), "wnut17", "dev.conll")
    sentences, current = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                if current:
                    sentences.append(current)
                current = []
            else:
                current.append(line.rstrip("\n").split("\t")[-1])
    if current:
        sentences.append(current)
    return sentences


def perturbed(gold, seed):
    """Predictions with the errors taggers make: missed, shifted and retyped
    entities, stray I- tags, B-/I- swaps."""
    rng = random.Random(seed)
    kinds = sorted({t[2:] for s in gold for t in s if t != "O"})
    result = []
    for sentence in gold:
        pred = list(sentence)
        for i in range(len(pred)):
            r = rng.random()
            if r < 0.05:
                pred[i] = "O"
            elif r < 0.08:
                pred[i] = rng.choice("BI") + "-" + rng.choice(kinds)
            elif r < 0.12 and pred[i] != "O":
                pred[i] = ("I-" if pred[i][0] == "B" else "B-") + pred[i][2:]
        result.append(pred)
    return result


@pytest.mark.parametrize("strict", [False, True], ids=["conlleval", "strict_iob2"])
def test_equals_seqeval_on_real_wnut_dev_tags(strict):
    seqeval = pytest.importorskip("seqeval.metrics", reason="seqeval is not installed "
                                  "(pip install seqeval==1.2.2)")
    from seqeval.scheme import IOB2

    gold = wnut_dev_tags()
    assert len(gold) == 1009
    mode = dict(mode="strict", scheme=IOB2) if strict else {}
    for seed in range(3):
        pred = perturbed(gold, seed)
        ours = entity_scores(gold, pred, strict=strict)
        for name in ("precision", "recall", "f1"):
            theirs = getattr(seqeval, f"{name}_score")(gold, pred, **mode)
            assert ours[name] == pytest.approx(theirs, abs=1e-12), (seed, name)
        report = seqeval.classification_report(gold, pred, output_dict=True, **mode)
        for kind, values in ours["per_type"].items():
            assert values["support"] == report[kind]["support"]
            assert values["f1"] == pytest.approx(report[kind]["f1-score"], abs=1e-12)
            assert values["precision"] == pytest.approx(report[kind]["precision"],
                                                        abs=1e-12)
    # The modes differ on these predictions (stray I- tags): the test tells them apart.
    pred = perturbed(gold, 0)
    assert entity_scores(gold, pred)["f1"] != entity_scores(gold, pred, strict=True)["f1"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
