"""Pictures of a model directory's training, drawn from its TensorBoard event files.

`plot_model_dir(model_dir)` writes `training_curves.png` (loss, accuracies and the
other evaluation metrics, learning rate: train and eval on the same axes, x = global
step) and, for a single-label classifier evaluated during fine-tuning,
`confusion_matrix.png` (counts and row shares; rows true, columns predicted).

Headless and thread-safe: figures are `matplotlib.figure.Figure` objects rendered by
`FigureCanvasAgg`, never pyplot's global state. Event files are read with public
APIs (TensorBoard's `event_file_loader`, `tf.make_ndarray`).
TensorFlow and matplotlib load on first use; `import keras_bert_app` does not load
this module.
"""

import glob
import os

import numpy as np

from keras_bert_app import names
from keras_bert_app.files import read_json_file

CURVES_FILE = "training_curves.png"
# One panel per metric, in this order, where the logs hold it (pre-training,
# single-label, multi-label and regression runs each log a subset).
CURVE_METRICS = ("loss", "masked_lm_accuracy", "next_sentence_accuracy", "accuracy",
                 "binary_accuracy", "f1", "micro_f1", "mcc", "pearson", "spearman",
                 "mse", "learning_rate")
DPI = 100


def _event_files(log_dir, required=True):
    files = sorted(glob.glob(os.path.join(glob.escape(os.fspath(log_dir)),
                                          "events.out.tfevents*")))
    if not files and required:
        raise FileNotFoundError(f"{log_dir} holds no TensorBoard event files "
                                "(events.out.tfevents*).")
    return files


def _read_values(log_dir):
    """`{(tag, step): ndarray}` of every summary value under `log_dir`, in the order
    they were last written.

    Resumed runs and per-evaluation writers leave several event files, and a resumed
    run logs some steps again: the value written last (by the event's wall time, then
    file and record order) wins. A record cut short by a kill is skipped.
    """
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_file_loader

    records = []  # (wall_time, file index, record index, tag, step, TensorProto)
    for file_index, path in enumerate(_event_files(log_dir)):
        # TensorBoard's reader of one file (event_accumulator's, without its directory
        # watcher's logging): TF1 simple values come as scalar tensors, like TF2's, and
        # a truncated last record ends the file quietly.
        events = event_file_loader.EventFileLoader(path).Load()
        for record_index, event in enumerate(events):
            for value in event.summary.value:
                if value.HasField("tensor"):  # all summaries, once migrated
                    records.append((event.wall_time, file_index, record_index,
                                    value.tag, event.step, value.tensor))
    records.sort(key=lambda r: r[:3])
    values = {}
    for *_, tag, step, proto in records:
        key = (tag, int(step))
        values.pop(key, None)  # re-inserted: the dict's order is write order
        values[key] = tf.make_ndarray(proto)
    return values


def read_scalars(log_dir):
    """The scalar series of a TensorBoard log folder.

    Args:
        log_dir: a folder of event files (e.g. `model_dir/logs/train`); every
            `events.out.tfevents*` file in it is read.

    Returns:
        `{tag: (steps, values)}`: int64 [n] steps in increasing order and float64 [n]
        values, one per step (the last value written for a step).

    Raises:
        FileNotFoundError: `log_dir` holds no event files.
    """
    series = {}
    for (tag, step), array in _read_values(log_dir).items():
        if array.ndim == 0 and np.issubdtype(array.dtype, np.number):
            series.setdefault(tag, {})[step] = float(array)
    out = {}
    for tag, by_step in series.items():
        steps = np.array(sorted(by_step), np.int64)
        out[tag] = (steps, np.array([by_step[s] for s in steps], np.float64))
    return out


def read_tensor(log_dir, tag, step=None):
    """One tensor summary (e.g. `confusion_matrix`) of a TensorBoard log folder.

    Args:
        log_dir: a folder of event files.
        tag: the summary's tag.
        step: the global step to read; None: the step written last.

    Returns:
        `(step, array)`: the step and the tensor as NumPy (dtype and shape as written).

    Raises:
        FileNotFoundError: `log_dir` holds no event files.
        ValueError: `tag` is not logged there, or not at `step` (the message lists the
            steps it is logged at).
    """
    values = _read_values(log_dir)
    steps = sorted(s for t, s in values if t == tag)
    if not steps:
        raise ValueError(f"{log_dir} has no {tag!r} summary.")
    if step is None:
        step = [s for t, s in values if t == tag][-1]  # values are in write order
    elif (tag, step) not in values:
        raise ValueError(f"{log_dir} has no {tag!r} at step {step}; it is logged at "
                         f"steps {steps}.")
    return step, values[(tag, step)]


def _split_of(tag, metric):
    """`""` for `metric` itself, the split for `split/metric`, None otherwise."""
    if tag == metric:
        return ""
    if tag.endswith("/" + metric):
        return tag[:-len(metric) - 1]
    return None


def training_curves_figure(train_scalars, eval_scalars, title):
    """A `Figure` with one panel per metric of CURVE_METRICS present: the train series
    as a line, each evaluation split's as a line with markers, x = global step.

    Args:
        train_scalars, eval_scalars: `read_scalars` results (either may be empty).
        title: the figure's title.

    Raises:
        ValueError: none of CURVE_METRICS is in either.
    """
    from matplotlib.figure import Figure

    panels = []
    for metric in CURVE_METRICS:
        lines = [("train", *train_scalars[metric])] if metric in train_scalars else []
        for tag in sorted(eval_scalars):
            split = _split_of(tag, metric)
            if split is not None:
                lines.append((f"eval {split}".strip(), *eval_scalars[tag]))
        if lines:
            panels.append((metric, lines))
    if not panels:
        raise ValueError(f"no curve to draw: the logs hold {sorted(train_scalars)} "
                         f"(train) and {sorted(eval_scalars)} (eval), none of "
                         f"{list(CURVE_METRICS)}.")
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(5 * columns, 3.4 * rows + 0.6), dpi=DPI,
                    layout="constrained")
    figure.suptitle(title)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, (metric, lines) in zip(axes, panels):
        for label, steps, values in lines:
            # Evaluations are few points (often one): markers keep them visible.
            ax.plot(steps, values, label=label,
                    marker="o" if label != "train" or len(steps) < 3 else None,
                    markersize=4)
        ax.set_title(metric.replace("_", " "))
        ax.set_xlabel("global step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return figure


def _save(figure, png_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    directory = os.path.dirname(os.path.abspath(png_path))
    os.makedirs(directory, exist_ok=True)
    FigureCanvasAgg(figure).print_png(png_path)
    return os.fspath(png_path)


def plot_training_curves(model_dir, png_path):
    """Writes the training and evaluation curves of `model_dir` as a PNG.

    Args:
        model_dir: a pre-training or fine-tuning `--model_dir` (`logs/train` and/or
            `logs/eval` inside).
        png_path: the PNG to write (its folder is created).

    Returns:
        `png_path`.

    Raises:
        FileNotFoundError: neither log folder holds event files.
    """
    logs = {}
    for name, folder in (("train", names.TRAIN_LOGS_DIR), ("eval", names.EVAL_LOGS_DIR)):
        log_dir = os.path.join(model_dir, folder)
        logs[name] = read_scalars(log_dir) if _event_files(log_dir, False) else {}
    if not logs["train"] and not logs["eval"]:
        raise FileNotFoundError(f"{model_dir} has no TensorBoard event files in "
                                f"{names.TRAIN_LOGS_DIR} or {names.EVAL_LOGS_DIR}.")
    shown = {(True, True): "training and evaluation", (True, False): "training",
             (False, True): "evaluation"}[(bool(logs["train"]), bool(logs["eval"]))]
    title = f"{os.path.basename(os.path.abspath(model_dir))}: {shown}"
    return _save(training_curves_figure(logs["train"], logs["eval"], title), png_path)


def read_confusion_matrix(model_dir, tag=names.CONFUSION_MATRIX_TAG):
    """The confusion matrix of the model `model_dir` ended with, and its labels.

    The step is `eval_results.json`'s `best_step` when present (the directory holds
    the best checkpoint), else its `global_step`, else the evaluation logged last.

    Args:
        model_dir: a fine-tuned classifier's `--model_dir`.
        tag: `confusion_matrix`, or `split/confusion_matrix` for a second split.

    Returns:
        `(matrix, label_names, step, source)`: int64 [k, k] (rows true, columns
        predicted), k names in id order (`task_config.json`'s, else the ids), the step
        and where it came from (for the picture's title).

    Raises:
        ValueError: naming the directory, when no such matrix is logged (or not at
            the step `eval_results.json` names).
    """
    from keras_bert_app.model_dir import read_task_config

    log_dir = os.path.join(model_dir, names.EVAL_LOGS_DIR)
    step, source = None, "the evaluation logged last"
    results_file = os.path.join(model_dir, names.EVAL_RESULTS_FILE)
    if os.path.isfile(results_file):
        results = read_json_file(results_file)
        for key in ("best_step", "global_step"):
            if isinstance(results, dict) and isinstance(results.get(key), int):
                step, source = results[key], f"{key} of {names.EVAL_RESULTS_FILE}"
                break
    try:
        step, matrix = read_tensor(log_dir, tag, step)
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(f"{model_dir}: no confusion matrix to draw ({error})") from None
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{log_dir}: {tag!r} at step {step} has shape {matrix.shape}; "
                         "a confusion matrix is [k, k].")
    task = read_task_config(model_dir)
    label_names = task.label_names if task is not None and task.label_names else None
    if label_names is None:
        label_names = tuple(str(i) for i in range(len(matrix)))
    elif len(label_names) != len(matrix):
        raise ValueError(f"{os.path.join(model_dir, names.TASK_CONFIG_FILE)} names "
                         f"{len(label_names)} labels; the confusion matrix at step "
                         f"{step} is {matrix.shape}.")
    return matrix.astype(np.int64), tuple(label_names), step, source


def confusion_matrix_figure(matrix, label_names, title):
    """A `Figure` of a confusion matrix: each cell shows its count and its share of
    the row (the true label's examples), shaded by the share.

    Args:
        matrix: [k, k] counts, rows true labels, columns predicted labels.
        label_names: k names in id order.
        title: the figure's title.
    """
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix, np.int64)
    k = len(matrix)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = matrix / np.maximum(totals, 1)  # [k, k]; an empty row stays 0, not NaN
    size = max(4.5, 0.7 * k + 2.5)
    figure = Figure(figsize=(size + 1, size), dpi=DPI, layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=ax, label="share of the true label's examples")
    font = "medium" if k <= 6 else "small" if k <= 12 else "x-small"
    for row in range(k):
        for column in range(k):
            ax.text(column, row, f"{matrix[row, column]}\n{shares[row, column]:.0%}",
                    ha="center", va="center", fontsize=font,
                    color="white" if shares[row, column] > 0.5 else "black")
    long_names = max(len(n) for n in label_names) > 6
    ax.set_xticks(range(k), labels=label_names, rotation=45 if long_names else 0,
                  ha="right" if long_names else "center")
    ax.set_yticks(range(k), labels=label_names)
    ax.set_xlabel("predicted label (columns)")
    ax.set_ylabel("true label (rows)")
    ax.set_title(title)
    return figure


def plot_confusion_matrix(model_dir, png_path, tag=names.CONFUSION_MATRIX_TAG):
    """Writes the confusion matrix of `model_dir`'s final model (see
    `read_confusion_matrix`) as a PNG.

    Args:
        model_dir: a fine-tuned single-label classifier's `--model_dir`.
        png_path: the PNG to write (its folder is created).
        tag: `confusion_matrix`, or `split/confusion_matrix` for a second split.

    Returns:
        `png_path`.
    """
    matrix, label_names, step, source = read_confusion_matrix(model_dir, tag)
    split = _split_of(tag, names.CONFUSION_MATRIX_TAG) or "eval"
    title = (f"Confusion matrix, {split} set ({matrix.sum()} examples)\n"
             f"step {step} ({source})")
    return _save(confusion_matrix_figure(matrix, label_names, title), png_path)


def plot_model_dir(model_dir, output_dir=None):
    """Writes every picture `model_dir`'s logs allow: `training_curves.png` and, where
    single-label evaluations logged one, `confusion_matrix.png` (and
    `confusion_matrix_<split>.png` for further evaluation splits). Pre-training,
    regression and multi-label directories have no confusion matrix.

    Args:
        model_dir: a `--model_dir` of run_pretraining or run_classifier.
        output_dir: where to write; default `model_dir/plots`.

    Returns:
        The paths written, curves first.

    Raises:
        FileNotFoundError: `model_dir` is not a directory, or has no event files.
    """
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"model_dir {model_dir} is not a directory.")
    output_dir = output_dir or os.path.join(model_dir, "plots")
    written = [plot_training_curves(model_dir, os.path.join(output_dir, CURVES_FILE))]
    eval_dir = os.path.join(model_dir, names.EVAL_LOGS_DIR)
    if _event_files(eval_dir, required=False):
        tags = sorted({tag for tag, _ in _read_values(eval_dir)
                       if _split_of(tag, names.CONFUSION_MATRIX_TAG) is not None},
                      key=lambda t: (t != names.CONFUSION_MATRIX_TAG, t))
        for tag in tags:
            split = _split_of(tag, names.CONFUSION_MATRIX_TAG)
            name = f"confusion_matrix_{split.replace('/', '_')}.png" if split else \
                "confusion_matrix.png"
            written.append(plot_confusion_matrix(model_dir,
                                                 os.path.join(output_dir, name), tag))
    return written
