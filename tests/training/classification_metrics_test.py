"""Evaluation metrics as papers report them, checked against hand-worked cases, SciPy
(Pearson, Spearman with ties) and plain confusion-matrix definitions written here."""

import json
import sys

import numpy as np
import pytest
import scipy.stats

from keras_bert_app.data.classification_data import GLUE_TASKS
from keras_bert_app.training.classification_metrics import (GREATER_IS_BETTER,
                                                            METRIC_NAMES,
                                                            classification_metrics,
                                                            confusion_matrix)


def one_hot_probabilities(predictions, k):
    """Probabilities [n, k] whose argmax is `predictions` (not exactly one-hot)."""
    out = np.full([len(predictions), k], 0.1 / k)
    out[np.arange(len(predictions)), predictions] += 0.9
    return out


# Binary, worked by hand:
#   labels      1 1 1 1 0 0 0 0 0 0
#   predictions 1 1 1 0 1 0 0 0 0 0   -> tp=3 fn=1 fp=1 tn=5
#   accuracy = 8/10 = 0.8
#   F1 of class 1 = 2tp / (2tp + fp + fn) = 6/8 = 0.75   (class 0 would be 10/12)
#   MCC = (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = 14/24
BINARY_LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
BINARY_PREDICTIONS = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])


def test_binary_accuracy_f1_and_mcc_match_the_hand_worked_case():
    metrics = classification_metrics("single_label", BINARY_LABELS,
                                     one_hot_probabilities(BINARY_PREDICTIONS, 2))
    assert metrics == pytest.approx({"accuracy": 0.8, "f1": 0.75, "mcc": 14 / 24})


def test_binary_f1_is_the_f1_of_class_id_1_not_class_0():
    # The same predictions with the classes renamed: class 1 is now the old class 0,
    # whose F1 is 10/12. Accuracy and MCC do not depend on which class is positive.
    metrics = classification_metrics("single_label", 1 - BINARY_LABELS,
                                     one_hot_probabilities(1 - BINARY_PREDICTIONS, 2))
    assert metrics["f1"] == pytest.approx(10 / 12)
    assert metrics["accuracy"] == pytest.approx(0.8)
    assert metrics["mcc"] == pytest.approx(14 / 24)


def test_binary_f1_without_any_positive_is_zero_not_nan():
    # No label and no prediction of class 1: F1 is 0/0, 0.0 by zero_division=0; MCC is
    # undefined (one class only), 0.0 as sklearn returns.
    metrics = classification_metrics("single_label", [0, 0, 0],
                                     one_hot_probabilities([0, 0, 0], 2))
    assert metrics == {"accuracy": 1.0, "f1": 0.0, "mcc": 0.0}


def reference_macro_f1(labels, predictions):
    """Per class precision and recall, F1 = 2PR / (P + R) (0 where undefined), averaged
    over the classes seen in labels or predictions."""
    scores = []
    for c in sorted(set(labels) | set(predictions)):
        tp = sum(1 for t, p in zip(labels, predictions) if t == c and p == c)
        predicted = sum(1 for p in predictions if p == c)
        actual = sum(1 for t in labels if t == c)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        scores.append(2 * precision * recall / (precision + recall)
                      if precision + recall else 0.0)
    return sum(scores) / len(scores)


def reference_gorodkin_mcc(labels, predictions, k):
    """Gorodkin (2004): the K-category correlation coefficient from confusion matrix C,
    numerator sum_klm C_kk C_lm - C_kl C_mk, written as its triple sum."""
    c = np.zeros([k, k])
    for t, p in zip(labels, predictions):
        c[t, p] += 1
    numerator = sum(c[a, a] * c[b, m] - c[a, b] * c[m, a]
                    for a in range(k) for b in range(k) for m in range(k))
    rows = sum(c[a, :].sum() * (c.sum() - c[a, :].sum()) for a in range(k))
    columns = sum(c[:, a].sum() * (c.sum() - c[:, a].sum()) for a in range(k))
    return numerator / np.sqrt(rows * columns) if rows * columns else 0.0


@pytest.mark.parametrize("seed,k,absent", [(0, 3, None), (1, 4, None), (2, 5, 4)])
def test_multiclass_macro_f1_and_mcc_match_confusion_matrix_definitions(seed, k, absent):
    rng = np.random.default_rng(seed)
    classes = [c for c in range(k) if c != absent]  # `absent`: in neither labels nor output
    labels = rng.choice(classes, 300)
    predictions = np.where(rng.random(300) < 0.6, labels, rng.choice(classes, 300))
    probabilities = one_hot_probabilities(predictions, k)
    metrics = classification_metrics("single_label", labels, probabilities)
    assert metrics["accuracy"] == pytest.approx(np.mean(labels == predictions))
    assert metrics["f1"] == pytest.approx(reference_macro_f1(labels.tolist(),
                                                             predictions.tolist()))
    assert metrics["mcc"] == pytest.approx(reference_gorodkin_mcc(labels, predictions, k))


def test_multiclass_f1_is_macro_not_micro():
    # labels 0 0 0 0 1 2, predictions 0 0 0 0 0 0: F1 of class 0 = 8/10, classes 1 and 2
    # score 0; macro = 0.8 / 3, whereas micro F1 (= accuracy here) would be 4/6.
    metrics = classification_metrics("single_label", [0, 0, 0, 0, 1, 2],
                                     one_hot_probabilities([0] * 6, 3))
    assert metrics["f1"] == pytest.approx(0.8 / 3)
    assert metrics["mcc"] == 0.0  # every prediction one class: undefined, 0.0


# Confusion matrix, worked by hand (rows: true label, columns: predicted label):
#   labels      0 0 0 1 1 2
#   predictions 0 1 1 1 2 0
#   true 0: predicted 0 once, 1 twice; true 1: 1 once, 2 once; true 2: 0 once.
# Not symmetric: a transposed matrix (rows predicted) would read [[1,0,1],[2,1,0],[0,1,0]].
def test_confusion_matrix_rows_are_true_labels_and_columns_predictions():
    matrix = confusion_matrix([0, 0, 0, 1, 1, 2],
                              one_hot_probabilities([0, 1, 1, 1, 2, 0], 3))
    np.testing.assert_array_equal(matrix, [[1, 2, 0], [0, 1, 1], [1, 0, 0]])
    assert matrix.dtype == np.int64 and matrix.sum() == 6


def test_confusion_matrix_has_a_row_and_column_for_every_output_class():
    # Four output classes, class 3 neither true nor predicted: a zero row and column.
    matrix = confusion_matrix([0, 1, 2], one_hot_probabilities([0, 2, 2], 4))
    assert matrix.shape == (4, 4)
    assert matrix[3].sum() == 0 and matrix[:, 3].sum() == 0
    assert (matrix[0, 0], matrix[1, 2], matrix[2, 2]) == (1, 1, 1)


@pytest.mark.parametrize("seed,k", [(0, 2), (1, 5)])
def test_confusion_matrix_agrees_with_the_single_label_metrics(seed, k):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, 200)
    predictions = np.where(rng.random(200) < 0.7, labels, rng.integers(0, k, 200))
    matrix = confusion_matrix(labels, one_hot_probabilities(predictions, k))
    for true in range(k):
        for predicted in range(k):
            assert matrix[true, predicted] == np.sum((labels == true) &
                                                     (predictions == predicted))
    metrics = classification_metrics("single_label", labels,
                                     one_hot_probabilities(predictions, k))
    assert metrics["accuracy"] == pytest.approx(np.trace(matrix) / 200)


@pytest.mark.parametrize("labels,outputs,message", [
    ([0, 3], [[.5, .5], [.5, .5]], r"\[0, 2\)"),
    ([0, 1, 1], [[.5, .5], [.5, .5]], r"class ids \[2\]"),
    ([0, 1], [.5, .5], r"\[n, classes >= 2\]"),
    ([], np.zeros([0, 2]), "no examples"),
])
def test_confusion_matrix_refuses_bad_input(labels, outputs, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(labels, outputs)


# Multi-label, worked by hand (a label is predicted when its sigmoid is above 0.5):
#   labels       probabilities     predicted
#   1 0 0        .9 .2 .1          1 0 0   exact
#   1 1 0        .7 .4 .1          1 0 0
#   0 1 0        .6 .8 .3          1 1 0
#   0 0 0        .1 .5 .2          0 0 0   exact (0.5 is not above 0.5)
#   accuracy (exact match) = 2/4
#   label 0: tp=2 fp=1 fn=0 -> 4/5; label 1: tp=1 fp=0 fn=1 -> 2/3; label 2: never -> 0
#   macro F1 = (4/5 + 2/3 + 0) / 3; micro: tp=3 fp=1 fn=1 -> 6/8
def test_multi_label_metrics_match_the_hand_worked_case():
    labels = [[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]]
    outputs = [[.9, .2, .1], [.7, .4, .1], [.6, .8, .3], [.1, .5, .2]]
    metrics = classification_metrics("multi_label", labels, outputs, ["a", "b", "c"])
    assert metrics == pytest.approx({"accuracy": 0.5, "f1": (4 / 5 + 2 / 3) / 3,
                                     "micro_f1": 0.75})


@pytest.mark.parametrize("seed,n", [(0, 50), (1, 333), (2, 1000)])
def test_pearson_and_spearman_match_scipy_with_ties(seed, n):
    rng = np.random.default_rng(seed)
    labels = np.round(rng.uniform(0, 5, n), 1)  # STS-B-like scores: many ties
    outputs = np.round(labels + rng.normal(0, 1, n), 1).astype(np.float32)[:, None]
    metrics = classification_metrics("regression", labels, outputs)
    reference = outputs[:, 0].astype(np.float64)
    assert metrics["pearson"] == pytest.approx(scipy.stats.pearsonr(labels, reference)[0],
                                               abs=1e-9)
    assert metrics["spearman"] == pytest.approx(
        scipy.stats.spearmanr(labels, reference)[0], abs=1e-9)
    assert metrics["mse"] == pytest.approx(np.mean((labels - reference) ** 2))


def test_regression_on_a_constant_is_zero_not_nan():
    # Pearson and Spearman divide by a standard deviation of 0: undefined, reported 0.0.
    # mse = (1.5² + 0.5² + 0.5²) / 3 = 2.75 / 3.
    metrics = classification_metrics("regression", [1.0, 2.0, 3.0], [2.5, 2.5, 2.5])
    assert metrics == {"pearson": 0.0, "spearman": 0.0, "mse": pytest.approx(2.75 / 3)}


@pytest.mark.parametrize("problem_type,labels,outputs", [
    ("single_label", [0, 1, 1], [[.9, .1], [.3, .7], [.6, .4]]),
    ("multi_label", [[1, 0], [0, 1]], [[.9, .1], [.3, .7]]),
    ("regression", [0.5, 2.0, 4.5], [1.0, 2.0, 3.0]),
])
def test_keys_are_metric_names_and_values_are_json_floats(problem_type, labels, outputs):
    metrics = classification_metrics(problem_type, labels, outputs)
    assert tuple(metrics) == METRIC_NAMES[problem_type]
    assert all(type(value) is float for value in metrics.values())
    json.dumps(metrics, allow_nan=False)


def test_every_metric_has_a_direction_and_glue_metrics_exist():
    names = {name for metrics in METRIC_NAMES.values() for name in metrics}
    assert set(GREATER_IS_BETTER) == names
    assert GREATER_IS_BETTER["mse"] is False and GREATER_IS_BETTER["mcc"] is True
    for task in GLUE_TASKS.values():
        assert set(task.metrics) <= set(METRIC_NAMES[task.problem_type]), task.name


@pytest.mark.parametrize("problem_type,labels,outputs,label_names,message", [
    ("single_label", [], np.zeros([0, 2]), None, "no examples"),
    ("single_label", [0, 2], [[.5, .5], [.5, .5]], None, r"\[0, 2\)"),
    ("single_label", [0, 1], [[.5, .5], [.5, .5]], ["a", "b", "c"], "3 label names"),
    ("single_label", [0, 1], [[np.nan, .5], [.5, .5]], None, "NaN"),
    ("multi_label", [[1, 0]], [[.5, .5, .5]], None, "multi_label"),
    ("regression", [1.0, 2.0], [1.0], None, "regression"),
    ("ranking", [1.0], [1.0], None, "ranking"),
])
def test_bad_inputs_are_refused_with_a_message(problem_type, labels, outputs, label_names,
                                               message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(problem_type, labels, outputs, label_names)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
