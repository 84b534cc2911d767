"""Entity-level NER metrics by seqeval's rules (seqeval 1.2.2).

Default mode: conlleval's chunks (seqeval's default `get_entities`): a chunk starts
at `B-X`, and at `I-X` after `O`, after the sentence start or after a chunk of
another type; it goes on over the following `I-X` of its type. Strict mode
(`strict=True`, seqeval's `mode="strict", scheme=IOB2`): an entity is `B-X` followed
by its `I-X`s; an `I-` that does not continue a chunk starts nothing.

An entity counts as correct when its type, first and last word equal a gold one.
Precision, recall and F1 are micro (over all entities) and per type (every type in
the gold or the predicted tags, with its gold `support`); 0 where a denominator is 0
(seqeval's zero_division default). Tags are IOB (`O`, `B-X`, `I-X`).
"""

from keras_bert_app.data.ner_data import OUTSIDE, split_tag




def entities(tags, strict=False):
    """`[(type, first word, last word)]` of one sentence's tags."""
    found = []
    start, kind = None, None  # the open chunk
    for index, tag in enumerate(list(tags) + [OUTSIDE]):
        prefix, tag_kind = split_tag(tag)
        continues = prefix == "I" and start is not None and tag_kind == kind
        if start is not None and not continues:
            found.append((kind, start, index - 1))
            start, kind = None, None
        if prefix == "B" or (prefix == "I" and not continues and not strict):
            start, kind = index, tag_kind
    return found


def entity_scores(gold, predicted, strict=False):
    """Micro and per-type entity precision, recall and F1.

    Args:
        gold, predicted: per sentence, lists of tags of equal lengths.
        strict: seqeval's strict IOB2 mode instead of conlleval's chunks.

    Returns:
        `{"precision", "recall", "f1", "support", "predicted", "correct",
        "per_type": {type: {"precision", "recall", "f1", "support"}}}`.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted.")
    counts = {}  # type -> [gold, predicted, correct]
    for index, (true_tags, pred_tags) in enumerate(zip(gold, predicted)):
        if len(true_tags) != len(pred_tags):
            raise ValueError(f"sentence {index}: {len(true_tags)} gold tags but "
                             f"{len(pred_tags)} predicted.")
        true_set = set(entities(true_tags, strict))
        pred_set = set(entities(pred_tags, strict))
        for entity in true_set:
            counts.setdefault(entity[0], [0, 0, 0])[0] += 1
        for entity in pred_set:
            counts.setdefault(entity[0], [0, 0, 0])[1] += 1
        for entity in true_set & pred_set:
            counts[entity[0]][2] += 1
    totals = [sum(c[i] for c in counts.values()) for i in range(3)]
    result = _scores(*totals)
    result.update(predicted=totals[1], correct=totals[2])
    result["per_type"] = {kind: _scores(*counts[kind]) for kind in sorted(counts)}
    return result


def _scores(support, predicted, correct):
    precision = correct / predicted if predicted else 0.0
    recall = correct / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def flat_scores(scores):
    """`entity_scores` as one level of floats (TensorBoard scalars, checkpoint
    records): `precision`, `recall`, `f1`, and `TYPE/precision`, `TYPE/recall`,
    `TYPE/f1`, `TYPE/support`."""
    flat = {k: float(scores[k]) for k in ("precision", "recall", "f1")}
    for kind, values in scores["per_type"].items():
        flat.update({f"{kind}/{k}": float(v) for k, v in values.items()})
    return flat


def nested_scores(flat):
    """`flat_scores`' inverse: `precision`, `recall`, `f1` (and any other plain
    keys) plus `per_type` with integer supports."""
    result, per_type = {}, {}
    for key, value in flat.items():
        if "/" in key:
            kind, name = key.rsplit("/", 1)
            per_type.setdefault(kind, {})[name] = int(value) if name == "support" \
                else value
        else:
            result[key] = value
    result["per_type"] = dict(sorted(per_type.items()))
    return result
