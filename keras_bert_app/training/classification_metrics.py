"""Classification and regression metrics as papers report them (GLUE: accuracy, F1,
Matthews correlation, Pearson and Spearman), in NumPy over a whole evaluation set.

Values are plain Python floats, fractions rather than percentages, and never NaN (NaN
is not JSON): where a metric is undefined (a constant input, no positives at all) it is
0.0, sklearn's `zero_division=0` convention, as sklearn's `matthews_corrcoef` returns.
"""

import numpy as np

from keras_bert_app import names
from keras_bert_app.data.classification_data import MULTI_LABEL_THRESHOLD, PROBLEM_TYPES

# What `classification_metrics` returns per problem type: the choices of `--metric`.
METRIC_NAMES = {
    names.SINGLE_LABEL: ("accuracy", "f1", "mcc"),
    names.MULTI_LABEL: ("accuracy", "f1", "micro_f1"),
    names.REGRESSION: ("pearson", "spearman", "mse"),
}
GREATER_IS_BETTER = {"accuracy": True, "f1": True, "mcc": True, "micro_f1": True,
                     "pearson": True, "spearman": True, "mse": False}


def _f1(tp, fp, fn):
    """F1 = 2tp / (2tp + fp + fn), elementwise; 0.0 where nothing was true or predicted."""
    tp, fp, fn = (np.asarray(v, np.float64) for v in (tp, fp, fn))
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def _mcc(confusion):
    """Matthews correlation of a [k, k] confusion matrix (rows: true, columns: predicted),
    for k > 2 Gorodkin's generalisation, in the covariance form sklearn computes; 0.0
    when a marginal is constant."""
    confusion = np.asarray(confusion, np.float64)
    true_counts, predicted_counts = confusion.sum(axis=1), confusion.sum(axis=0)
    n = confusion.sum()
    covariance = np.trace(confusion) * n - true_counts @ predicted_counts
    variance_true = n * n - true_counts @ true_counts
    variance_predicted = n * n - predicted_counts @ predicted_counts
    if variance_true * variance_predicted == 0:
        return 0.0
    return float(np.clip(covariance / np.sqrt(variance_true * variance_predicted), -1, 1))


def _finite_arrays(labels, outputs, what):
    """Both as float64 arrays; none empty, NaN or infinite."""
    labels = np.asarray(labels, np.float64)
    outputs = np.asarray(outputs, np.float64)
    if labels.size == 0 or outputs.size == 0:
        raise ValueError(f"no examples to compute {what} on")
    for name, values in (("labels", labels), ("outputs", outputs)):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"the {name} contain NaN or infinity; metrics are undefined")
    return labels, outputs


def confusion_matrix(labels, outputs):
    """Counts of (true label, predicted label) over a single-label evaluation set.

    Args:
        labels: class ids [n] (ints, or floats holding whole numbers).
        outputs: probabilities (or logits) [n, k], k >= 2; the prediction is the argmax.

    Returns:
        int64 [k, k]: rows are true labels, columns predicted labels, in id order
        (`[i, j]` counts examples of class i predicted as j); the total is n.
    """
    labels, outputs = _finite_arrays(labels, outputs, "a confusion matrix")
    if outputs.ndim != 2 or outputs.shape[1] < 2:
        raise ValueError(f"single_label outputs must be probabilities [n, classes >= 2]; "
                         f"got shape {outputs.shape}")
    k = outputs.shape[1]
    if labels.shape != outputs.shape[:1] or not np.all(labels == np.round(labels)):
        raise ValueError(f"single_label labels must be class ids [{outputs.shape[0]}]; got "
                         f"shape {labels.shape}")
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"label ids must be in [0, {k}); got "
                         f"{labels.min()}..{labels.max()}")
    confusion = np.zeros([k, k], np.int64)
    np.add.at(confusion, (labels, np.argmax(outputs, axis=1)), 1)
    return confusion


def _single_label(labels, outputs, label_names):
    if label_names is not None and outputs.ndim == 2 and len(label_names) != \
            outputs.shape[1]:
        raise ValueError(f"{outputs.shape[1]} output classes but {len(label_names)} "
                         "label names")
    confusion = confusion_matrix(labels, outputs)
    k = len(confusion)
    tp = np.diag(confusion)
    per_class = _f1(tp, confusion.sum(axis=0) - tp, confusion.sum(axis=1) - tp)
    if k == 2:
        f1 = per_class[1]  # binary F1 of the positive class, id 1 (MRPC, QQP)
    else:
        # Macro F1 over the classes that occur in the labels or the predictions, as
        # sklearn's f1_score(average="macro") averages when not given `labels=`; a class
        # absent from both is left out rather than counted as 0.
        occurring = (confusion.sum(axis=0) + confusion.sum(axis=1)) > 0
        f1 = per_class[occurring].mean()
    return {"accuracy": tp.sum() / confusion.sum(), "f1": f1, "mcc": _mcc(confusion)}


def _multi_label(labels, outputs, label_names):
    if outputs.ndim != 2 or labels.shape != outputs.shape:
        raise ValueError(f"multi_label labels and outputs must both be [n, labels]; got "
                         f"{labels.shape} and {outputs.shape}")
    if label_names is not None and len(label_names) != outputs.shape[1]:
        raise ValueError(f"{outputs.shape[1]} output labels but {len(label_names)} label "
                         "names")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("multi_label labels must be multi-hot (0 or 1)")
    truth, predicted = labels == 1, outputs > MULTI_LABEL_THRESHOLD
    tp = np.sum(truth & predicted, axis=0)
    fp = np.sum(~truth & predicted, axis=0)
    fn = np.sum(truth & ~predicted, axis=0)
    return {"accuracy": np.mean(np.all(truth == predicted, axis=1)),
            # Every label counts, 0.0 when never true nor predicted (sklearn's macro F1 on
            # multi-hot input with zero_division=0).
            "f1": np.mean(_f1(tp, fp, fn)),
            "micro_f1": _f1(tp.sum(), fp.sum(), fn.sum())}


def _average_ranks(values):
    """1-based ranks, ties sharing their average rank (scipy.stats.rankdata's default)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts) - 1  # tie group of each sorted position
    bounds = np.r_[np.flatnonzero(starts), len(values)]  # group g: [bounds[g], bounds[g+1])
    ranks = np.empty(len(values), np.float64)
    ranks[order] = (bounds[group] + bounds[group + 1] + 1) / 2.0
    return ranks


def _pearson(x, y):
    x, y = x - x.mean(), y - y.mean()
    scale = np.sqrt((x @ x) * (y @ y))
    return float(np.clip((x @ y) / scale, -1, 1)) if scale > 0 else 0.0


def _regression(labels, outputs):
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        outputs = outputs[:, 0]
    if outputs.shape != labels.shape or labels.ndim != 1:
        raise ValueError(f"regression labels and outputs must be [n] (outputs may be "
                         f"[n, 1]); got {labels.shape} and {outputs.shape}")
    return {"pearson": _pearson(labels, outputs),
            "spearman": _pearson(_average_ranks(labels), _average_ranks(outputs)),
            "mse": np.mean((labels - outputs) ** 2)}


def classification_metrics(problem_type, labels, outputs, label_names=None):
    """{metric: float} over a whole evaluation set; keys are METRIC_NAMES[problem_type].

    single_label: `labels` int [n], `outputs` probabilities [n, classes]: `accuracy`,
    `f1` (binary: of class id 1; more classes: macro), `mcc`. multi_label: multi-hot
    `labels` [n, k], sigmoid `outputs` [n, k], decided above MULTI_LABEL_THRESHOLD:
    `accuracy` (exact match), `f1` (macro), `micro_f1`. regression: `labels` [n],
    `outputs` [n] or [n, 1]: `pearson`, `spearman` (average ranks for ties), `mse`.
    """
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type {problem_type!r} is not one of {PROBLEM_TYPES}")
    labels, outputs = _finite_arrays(labels, outputs, "metrics")
    if problem_type == names.SINGLE_LABEL:
        metrics = _single_label(labels, outputs, label_names)
    elif problem_type == names.MULTI_LABEL:
        metrics = _multi_label(labels, outputs, label_names)
    else:
        metrics = _regression(labels, outputs)
    return {name: float(metrics[name]) for name in METRIC_NAMES[problem_type]}
