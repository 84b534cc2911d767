"""The NER export's entity spans in the graph (`ner_graph.entity_words`) are exactly
the metric's entities (`training.ner_metrics.entities`) in both modes, on random tag
sequences full of the cases the two modes disagree on (I- after O, after another
type, at a text's start)."""

import random
import sys

import pytest
import tensorflow as tf

from keras_bert_app.export.ner_graph import entity_words, label_tables
from keras_bert_app.training.ner_metrics import entities

LABELS = ("O", "B-LOC", "I-LOC", "B-PER", "I-PER")


def graph_entities(texts, strict):
    prefix, type_id, types = label_tables(LABELS)
    tag_ids = [LABELS.index(t) for tags in texts for t in tags]
    rows = [row for row, tags in enumerate(texts) for _ in tags]
    starts = [sum(len(t) for t in texts[:row]) for row in range(len(texts))]
    first, last, kind = entity_words(
        tf.constant(tag_ids, tf.int32), tf.constant(rows, tf.int64),
        tf.constant(prefix, tf.int32), tf.constant(type_id, tf.int32), strict=strict)
    found = [[] for _ in texts]
    for a, b, k in zip(first.numpy(), last.numpy(), kind.numpy()):
        row = rows[a]
        found[row].append((types[k], int(a) - starts[row], int(b) - starts[row]))
    return found


@pytest.mark.parametrize("strict", [False, True])
def test_served_entities_are_the_metrics_entities_in_both_modes(strict):
    rng = random.Random(7)
    texts = [[rng.choice(LABELS) for _ in range(rng.randint(0, 12))] for _ in range(400)]
    texts += [[], ["I-PER"], ["I-PER", "I-PER"], ["B-PER", "I-LOC", "I-LOC"],
              ["O", "I-LOC", "B-LOC", "I-LOC"]]
    assert graph_entities(texts, strict) == [entities(t, strict=strict) for t in texts]


def test_the_modes_differ_on_an_inside_tag_that_starts_nothing():
    texts = [["O", "I-LOC", "I-LOC", "B-PER", "I-PER", "I-LOC"]]
    assert graph_entities(texts, strict=False) == [[("LOC", 1, 2), ("PER", 3, 4),
                                                    ("LOC", 5, 5)]]
    assert graph_entities(texts, strict=True) == [[("PER", 3, 4)]]


def test_no_words_give_no_entities():
    assert graph_entities([], strict=True) == []
    assert graph_entities([[]], strict=True) == [[]]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
