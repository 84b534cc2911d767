"""SQuAD exact match and F1, computed as the official evaluation scripts compute them.

`squad_v1_scores` follows `evaluate-v1.1.py`: every question counts (one without a
prediction scores 0), the best score over the gold answers, F1 over normalised
tokens. `squad_v2_scores` follows `evaluate-v2.0.py`: gold answers that normalise to
nothing are dropped (an unanswerable question's gold is the empty answer), only
questions with a prediction count, an empty prediction against an empty gold scores 1
for F1, `na_probs` above `na_prob_thresh` turn a prediction into "no answer", and the
HasAns/NoAns breakdown and the best thresholds on the no-answer probabilities
(`best_exact`, `best_f1` and their `_thresh`). Scores are percentages, as the scripts
print them.
"""

import collections
import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text):
    """Lower case, no ASCII punctuation, no articles, single spaces (the scripts'
    order: punctuation before articles, so "the-end" loses its hyphen first)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _f1(gold_tokens, predicted_tokens):
    common = collections.Counter(gold_tokens) & collections.Counter(predicted_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(predicted_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_v1(prediction, gold):
    return _f1(normalize_answer(gold).split(), normalize_answer(prediction).split())


def f1_v2(prediction, gold):
    gold_tokens = normalize_answer(gold).split() if gold else []
    predicted_tokens = normalize_answer(prediction).split() if prediction else []
    if not gold_tokens or not predicted_tokens:
        # v2.0: no answer against no answer is right, against an answer wrong.
        return float(gold_tokens == predicted_tokens)
    return _f1(gold_tokens, predicted_tokens)


def exact(prediction, gold):
    return float(normalize_answer(prediction) == normalize_answer(gold))


def _questions(examples):
    """`(qid, gold answer texts)` of `examples` (SquadExample objects or the
    official JSON's `data` list)."""
    if isinstance(examples, dict):
        examples = examples["data"]
    for item in examples:
        if isinstance(item, dict):  # an article of the official layout
            for paragraph in item["paragraphs"]:
                for qa in paragraph["qas"]:
                    yield qa["id"], [a["text"] for a in qa["answers"]]
        else:
            yield item.qid, [text for text, _ in item.answers]


def squad_v1_scores(examples, predictions):
    """`{"exact_match", "f1", "total", "missing"}`; `predictions` maps question id to
    answer text."""
    em = f1 = 0.0
    total = missing = 0
    for qid, golds in _questions(examples):
        total += 1
        if qid not in predictions:
            missing += 1  # the script prints "Unanswered question …" and scores 0
            continue
        prediction = predictions[qid]
        em += max((exact(prediction, g) for g in golds), default=0.0)
        f1 += max((f1_v1(prediction, g) for g in golds), default=0.0)
    if not total:
        raise ValueError("no questions to score")
    return {"exact_match": 100.0 * em / total, "f1": 100.0 * f1 / total,
            "total": total, "missing": missing}


def _eval_dict(exact_scores, f1_scores, qids=None):
    qids = list(exact_scores) if qids is None else qids
    total = len(qids)
    return {"exact": 100.0 * sum(exact_scores[q] for q in qids) / total,
            "f1": 100.0 * sum(f1_scores[q] for q in qids) / total, "total": total}


def _best_threshold(predictions, scores, na_probs, has_answer):
    """The no-answer threshold that maximises the score, as `find_best_thresh`:
    start from answering nothing, then answer questions in increasing `na_probs`."""
    score = best = sum(1 for q in has_answer if not has_answer[q])
    threshold = 0.0
    for qid in sorted(na_probs, key=lambda q: na_probs[q]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            score += scores[qid]
        elif predictions[qid]:
            score -= 1
        if score > best:
            best, threshold = score, na_probs[qid]
    return 100.0 * best / len(scores), threshold


def squad_v2_scores(examples, predictions, na_probs=None, na_prob_thresh=1.0):
    """The official v2.0 report: `exact`, `f1`, `total`, `HasAns_*`, `NoAns_*` and,
    with `na_probs` (question id → no-answer probability or score, e.g.
    `null_odds.json`), `best_exact(_thresh)` and `best_f1(_thresh)`."""
    golds = dict(_questions(examples))
    has_answer = {q: bool(g) for q, g in golds.items()}
    exact_raw, f1_raw = {}, {}
    for qid, answers in golds.items():
        answers = [a for a in answers if normalize_answer(a)] or [""]
        if qid not in predictions:
            continue  # the script prints "Missing prediction for …" and skips it
        prediction = predictions[qid]
        exact_raw[qid] = max(exact(prediction, a) for a in answers)
        f1_raw[qid] = max(f1_v2(prediction, a) for a in answers)
    if not exact_raw:
        raise ValueError("no question has a prediction")
    probs = na_probs if na_probs is not None else {q: 0.0 for q in predictions}
    lacking = [q for q in exact_raw if q not in probs]
    if lacking:
        raise ValueError(f"{len(lacking)} predicted questions have no no-answer "
                         f"probability, e.g. {lacking[0]!r}")

    def thresholded(raw):
        return {q: float(not has_answer[q]) if probs[q] > na_prob_thresh else s
                for q, s in raw.items()}

    exact_scores, f1_scores = thresholded(exact_raw), thresholded(f1_raw)
    report = _eval_dict(exact_scores, f1_scores)
    for name, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [q for q in has_answer if has_answer[q] == wanted]
        if qids:
            # Over the predicted questions of the kind (the script requires a
            # prediction for every question; unpredicted ones are `missing` here).
            predicted = [q for q in qids if q in exact_scores]
            if predicted:
                part = _eval_dict(exact_scores, f1_scores, predicted)
                report.update({f"{name}_{k}": v for k, v in part.items()})
    if na_probs is not None:
        for name, raw in (("exact", exact_raw), ("f1", f1_raw)):
            best, threshold = _best_threshold(predictions, raw, na_probs, has_answer)
            report[f"best_{name}"], report[f"best_{name}_thresh"] = best, threshold
    report["missing"] = len(golds) - len(exact_raw)
    return report
