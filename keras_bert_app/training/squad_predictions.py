"""From start/end logits of every window to answers, as Google's `write_predictions`
does, with answer text cut from the original context by character offsets.

For each example, over all its windows: the `n_best_size` highest start and end
logits give candidate spans; a span counts if both ends are context pieces, it starts
in its piece's max-context window, ends no earlier than it starts and is at most
`max_answer_length` pieces long. Candidates are ranked by start + end logit; the
n-best list keeps the first of each distinct text, with softmax probabilities over
the list. SQuAD v2.0: the null score is the smallest `[CLS]` start + end logit over
the windows; the answer is empty when null score − best span score exceeds
`null_score_diff_threshold` (that difference is the question's `null_odds`).

Differences from Google's code: the n best starts and ends are chosen among the
window's real positions (Google's also rank its padding, whose logits depend on how
far the batch was padded: the served model pads to the longest window of a request);
the text is `context[start_char:end_char]` of the
span's pieces (an exact substring; Google detokenises and realigns with the
whitespace-split text), and an example with no valid span answers "" where Google
writes the string "empty".
"""

import collections
import math

import numpy as np

Candidate = collections.namedtuple("Candidate", "feature start end start_logit end_logit")


def _top(logits, n, real):
    """The `n` highest positions among the real ones (lower index first on ties)."""
    order = np.argsort(-np.asarray(logits), kind="stable")
    return order[np.asarray(real, bool)[order]][:n]


def squad_predictions(examples, features, start_logits, end_logits, n_best_size=20,
                      max_answer_length=30, version_2_with_negative=False,
                      null_score_diff_threshold=0.0):
    """`(predictions, nbest, null_odds)` — the contents of predictions.json,
    nbest_predictions.json and (v2) null_odds.json, keyed by question id.

    Args:
        examples: the `SquadExample`s.
        features: their `SquadFeature`s (any order).
        start_logits, end_logits: float `[len(features), max_seq_length]`.
    """
    if len(start_logits) != len(features) or len(end_logits) != len(features):
        raise ValueError(f"{len(features)} features but {len(start_logits)} start and "
                         f"{len(end_logits)} end logit rows")
    by_example = collections.defaultdict(list)
    for index, feature in enumerate(features):
        by_example[feature.example_index].append(index)
    predictions, nbest, null_odds = {}, {}, {}
    for example_index, example in enumerate(examples):
        candidates, null_score, null_logits = [], math.inf, (0.0, 0.0)
        for index in by_example.get(example_index, []):
            feature, starts, ends = features[index], start_logits[index], end_logits[index]
            if float(starts[0] + ends[0]) < null_score:  # [CLS]: no answer here
                null_score = float(starts[0] + ends[0])
                null_logits = (float(starts[0]), float(ends[0]))
            real = feature.input_mask
            for start in _top(starts, n_best_size, real):
                if feature.char_spans[start][0] < 0 or not feature.max_context[start]:
                    continue
                for end in _top(ends, n_best_size, real):
                    if feature.char_spans[end][0] < 0 or end < start or \
                            end - start + 1 > max_answer_length:
                        continue
                    candidates.append(Candidate(index, int(start), int(end),
                                                float(starts[start]), float(ends[end])))
        null = None
        if version_2_with_negative and null_score < math.inf:
            # "No answer" competes with the spans for a place in the n-best list.
            null = Candidate(None, 0, 0, *null_logits)
            candidates.append(null)
        candidates.sort(key=lambda c: c.start_logit + c.end_logit, reverse=True)
        entries, seen = [], set()

        def entry(c):
            if c.feature is None:
                return {"text": "", "start_logit": c.start_logit,
                        "end_logit": c.end_logit, "start_char": -1, "end_char": -1}
            spans = features[c.feature].char_spans
            start_char, end_char = int(spans[c.start][0]), int(spans[c.end][1])
            return {"text": example.context[start_char:end_char],
                    "start_logit": c.start_logit, "end_logit": c.end_logit,
                    "start_char": start_char, "end_char": end_char}

        for c in candidates:
            if len(entries) >= n_best_size:
                break
            made = entry(c)
            if made["text"] in seen:
                continue
            seen.add(made["text"])
            entries.append(made)
        if null is not None and "" not in seen:
            entries.append(entry(null))  # as Google: "no answer" is always listed
        best_span = next((e for e in entries if e["text"]), None)
        totals = np.array([e["start_logit"] + e["end_logit"] for e in entries])
        if len(totals):
            weights = np.exp(totals - totals.max())
            for entry, p in zip(entries, weights / weights.sum()):
                entry["probability"] = float(p)
        nbest[example.qid] = entries
        answer = best_span["text"] if best_span else ""
        if version_2_with_negative:
            span_score = best_span["start_logit"] + best_span["end_logit"] \
                if best_span else 0.0
            difference = (null_score if null_score < math.inf else 0.0) - span_score
            null_odds[example.qid] = difference
            if difference > null_score_diff_threshold:
                answer = ""
        predictions[example.qid] = answer
    return predictions, nbest, null_odds
