"""Exports a fine-tuned `BertClassifier` as a text-in SavedModel for TF Serving.

`serving_default` takes raw strings and returns the answer: no client-side tokenizer,
vocabulary or label list. Outputs by problem type (`batch` may be 0):

| problem type   | outputs                                                          |
|----------------|------------------------------------------------------------------|
| `single_label` | `probabilities` float32 `[batch, classes]` (softmax), `label_id` |
|                | int32 `[batch]` (argmax), `label` string `[batch]` (its name)    |
| `multi_label`  | `probabilities` float32 `[batch, classes]` (sigmoid), `label`    |
|                | string `[batch]`: the names with probability > 0.5, in label     |
|                | order, joined by `,` (`""` when none); no `label_id` (a multi-   |
|                | label answer has no single id; read `probabilities`)             |
| `regression`   | `score` float32 `[batch]`                                        |
"""

import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.export.serving_layout import (check_tensorflow_backend,
                                                  next_version_dir, save_export,
                                                  serving_variables, traced_for_saving,
                                                  text_warmup_requests,
                                                  write_warmup_requests)
from keras_bert_app.export.serving_ops import checked_export_dir

# How multi-label answers join the names of the labels they hold.
MULTI_LABEL_SEPARATOR = names.MULTI_LABEL_SEPARATOR
MULTI_LABEL_THRESHOLD = names.MULTI_LABEL_THRESHOLD


class _ClassifierExport(tf.Module):
    """The SavedModel's root: `serve` (the `serving_default` signature) plus the
    settings as variables (`label_names`, `max_seq_length`) for inspection."""

    def __init__(self, classifier, task_config):
        super().__init__()
        # Not attributes: the Keras objects stay out of the SavedModel's object graph
        # (see serving_variables); the function closes over them.
        self._model = lambda inputs: classifier(inputs, training=False)
        self._pack = classifier.preprocessor.pack
        # Its lookup tables and frozen variables are saved through it.
        self._tokenizer = classifier.preprocessor.tokenizer
        self._problem_type = task_config.problem_type
        self._text_inputs = tuple(task_config.text_inputs)
        self.max_seq_length = tf.Variable(classifier.preprocessor.sequence_length,
                                          trainable=False, name="max_seq_length")
        if task_config.label_names is not None:
            self.label_names = tf.Variable(list(task_config.label_names),
                                           trainable=False, name="label_names")
        specs = {name: tf.TensorSpec([None], tf.string, name=name)
                 for name in self._text_inputs}
        # Plain graph code: no autograph (faster to trace and save).
        self.serve = tf.function(self._answer, input_signature=[specs], autograph=False)
        with traced_for_saving():  # the save reuses this trace
            self._variables = serving_variables(self.serve.get_concrete_function())

    def _answer(self, texts):
        segments = [texts[name] for name in self._text_inputs]  # each string [batch]
        if len(segments) == 2:
            # Checked before any tokenizing starts (control dependency): mismatched
            # pairs fail as InvalidArgument naming the inputs, not deep inside packing.
            same_rows = tf.debugging.assert_equal(
                tf.size(segments[0]), tf.size(segments[1]),
                message=f"{names.TEXT_A} and {names.TEXT_B} must have the same number "
                        "of rows (one pair per example)")
            with tf.control_dependencies([same_rows]):
                segments = [tf.identity(s) for s in segments]
        # Padded to the longest row: any shape is free in a SavedModel.
        inputs = self._pack(segments, pad_to_longest=True)  # int32 [batch, length] each
        logits = tf.cast(self._model(inputs), tf.float32)  # [batch, outputs]
        if self._problem_type == names.REGRESSION:
            return {names.SCORE: logits[:, 0]}  # [batch]
        label_names = self.label_names.read_value()  # string [classes]
        if self._problem_type == names.MULTI_LABEL:
            probabilities = tf.sigmoid(logits)  # [batch, classes]
            chosen = tf.ragged.boolean_mask(
                tf.broadcast_to(label_names, tf.shape(probabilities, out_type=tf.int64)),
                probabilities > MULTI_LABEL_THRESHOLD)  # [batch, (chosen)]
            return {names.PROBABILITIES: probabilities,
                    names.LABEL: tf.strings.reduce_join(
                        chosen, axis=1, separator=MULTI_LABEL_SEPARATOR)}
        label_id = tf.argmax(logits, axis=-1, output_type=tf.int32)  # [batch]
        return {names.PROBABILITIES: tf.nn.softmax(logits, axis=-1),
                names.LABEL_ID: label_id,
                names.LABEL: tf.gather(label_names, label_id)}


def export_classifier(export_base, model_dir=None, classifier=None, task_config=None,
                      warmup_texts=None):
    """Writes a text-in classifier SavedModel as the next version under `export_base`.

    Give a fine-tuned classifier directory (`model_dir`, as `run_classifier` writes
    it), or a `BertClassifier` that carries its `preprocessor` together with its
    `TaskConfig` (label names, problem type, text inputs, sequence length).

    The SavedModel lands in `export_base/<n>/` (n: the next free version), so
    `tensorflow_model_server --model_base_path=export_base` serves it, with
    `assets.extra/tf_serving_warmup_requests` holding one request per warm-up example
    and one with all of them. It is checked (`check_serving_ops`: loads in stock TF
    Serving 2.19 and later) before it moves into place; a refused export leaves no
    version behind. Needs the TensorFlow Keras backend.

    Args:
        export_base: TF Serving's model base path.
        model_dir: a fine-tuned classifier directory.
        classifier: a `BertClassifier` with a preprocessor (instead of `model_dir`).
        task_config: the classifier's `TaskConfig` (with `classifier`).
        warmup_texts: warm-up examples: strings, or `(text_a, text_b)` pairs for a
            pair task; None uses a few built-in English sentences.

    Returns:
        The version directory written.
    """
    check_tensorflow_backend("export_classifier")
    classifier, task_config = _classifier_and_task(model_dir, classifier, task_config)
    requests = text_warmup_requests(task_config.text_inputs, warmup_texts)
    module = _ClassifierExport(classifier, task_config)
    version_dir = next_version_dir(export_base)
    with checked_export_dir(version_dir) as scratch:
        save_export(module, scratch)
        write_warmup_requests(scratch, requests)
    return version_dir


def _classifier_and_task(model_dir, classifier, task_config):
    from keras_bert_app.model_dir import load_classifier, read_task_config

    if (model_dir is None) == (classifier is None) or \
            (classifier is not None) != (task_config is not None):
        raise ValueError("export_classifier takes a model_dir, or a classifier together "
                         "with its task_config.")
    if model_dir is not None:
        task_config = read_task_config(model_dir)
        if task_config is None or task_config.task != names.CLASSIFICATION_TASK:
            raise ValueError(f"{model_dir} is not a fine-tuned classifier directory: its "
                             f"{names.TASK_CONFIG_FILE} records task "
                             f"{getattr(task_config, 'task', None)!r}, not "
                             f"{names.CLASSIFICATION_TASK!r}.")
        classifier = load_classifier(model_dir)
    where = model_dir or "the classifier"
    if task_config.task != names.CLASSIFICATION_TASK or \
            task_config.num_outputs != classifier.num_classes or \
            task_config.problem_type != classifier.problem_type:
        raise ValueError(f"task_config {task_config} does not describe {where} "
                         f"({classifier.num_classes} outputs, {classifier.problem_type}).")
    if classifier.preprocessor is None:
        raise ValueError("The classifier has no preprocessor: a text-in export needs "
                         "one (BertClassifier(..., preprocessor=BertTextPreprocessor)).")
    length = classifier.preprocessor.sequence_length
    if length != task_config.max_seq_length:
        raise ValueError(f"The classifier's preprocessor packs {length} tokens but the "
                         f"task was trained with max_seq_length="
                         f"{task_config.max_seq_length}.")
    if task_config.problem_type == names.MULTI_LABEL:
        joined = [n for n in task_config.label_names if MULTI_LABEL_SEPARATOR in n]
        if joined:
            raise ValueError(f"label_names {joined} of {where} contain "
                             f"{MULTI_LABEL_SEPARATOR!r}, which separates the labels of "
                             "a multi-label answer.")
    return classifier, task_config
