"""Exports a fine-tuned multiple-choice model as a text-in SavedModel for TF Serving.

`serving_default` takes a question's texts and returns the probability of each
choice; tokenization, pairing and the encoder run inside the graph (`batch` may be 0):

| input / output  | dtype, shape                  | meaning                               |
|-----------------|-------------------------------|---------------------------------------|
| `context`       | string `[batch]`              | the context (SWAG: `sent1`)           |
| `question`      | string `[batch]`              | `""` for none (SWAG: `sent2`)         |
| `choices`       | string `[batch, num_choices]` | `""` pads a question with fewer       |
| `probabilities` | float32 `[batch, num_choices]`| softmax over the question's choices;  |
|                 |                               | exactly 0 for `""`                    |
| `label_id`      | int32 `[batch]`               | the most probable choice; -1 when a   |
|                 |                               | row has no non-empty choice           |

Each choice is scored as in training, `[CLS] context [SEP] question choice [SEP]`
(`run_multiple_choice`), so the probabilities are `predictions.tsv`'s. The rows of
one request share `num_choices`: a question with fewer choices is padded with `""`,
which is never a real choice (training refuses empty ones) and changes nothing in
the other choices' probabilities.
"""

import os

import numpy as np
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.export.serving_layout import (check_tensorflow_backend,
                                                  next_version_dir, save_export,
                                                  serving_variables, traced_for_saving,
                                                  write_warmup_requests)
from keras_bert_app.export.serving_ops import checked_export_dir

CHOICES = names.CHOICES
# Warm-up questions (context, question, choices): four choices and three, so the
# request holding both pads one with "".
WARMUP_QUESTIONS = (
    ("The Amazon rainforest covers much of the Amazon basin of South America. The "
     "majority of the forest is contained within Brazil, with 60% of the rainforest, "
     "followed by Peru with 13% and Colombia with 10%.",
     "Which country holds most of the Amazon rainforest?",
     ("Peru", "Brazil", "Colombia", "Venezuela")),
    ("A man is sitting on a roof.", "He",
     ("starts pulling up roofing on a roof.", "is holding a rubik's cube.",
      "is using wrap to wrap a pair of skis.")),
)


class _MultipleChoiceExport(tf.Module):
    """The SavedModel's root: `serve` (the `serving_default` signature) plus
    `max_seq_length` as a variable for inspection."""

    def __init__(self, model, preprocessor):
        super().__init__()
        # Not attributes: the Keras objects stay out of the SavedModel's object graph
        # (see serving_variables); the function closes over them.
        self._model = lambda inputs: model(inputs, training=False)
        self._pack = preprocessor.pack
        self._tokenizer = preprocessor.tokenizer  # its tables are saved through it
        self.max_seq_length = tf.Variable(preprocessor.sequence_length, trainable=False,
                                          name="max_seq_length")
        specs = {names.CONTEXT: tf.TensorSpec([None], tf.string, name=names.CONTEXT),
                 names.QUESTION: tf.TensorSpec([None], tf.string, name=names.QUESTION),
                 CHOICES: tf.TensorSpec([None, None], tf.string, name=CHOICES)}
        self.serve = tf.function(self._answer, input_signature=[specs], autograph=False)
        with traced_for_saving():  # the save reuses this trace
            self._variables = serving_variables(self.serve.get_concrete_function())

    def _answer(self, inputs):
        context, question = inputs[names.CONTEXT], inputs[names.QUESTION]
        choices = inputs[CHOICES]  # [batch, C]
        rows = tf.shape(choices, out_type=tf.int64)[0]
        checks = [tf.debugging.assert_equal(
            tf.size(text, out_type=tf.int64), rows,
            message=f"{name} must have one row per row of {CHOICES}")
            for name, text in ((names.CONTEXT, context), (names.QUESTION, question))]
        with tf.control_dependencies(checks):
            shape = tf.shape(choices)
        # Every choice as its own pair: [batch * C] strings each.
        first = tf.reshape(tf.broadcast_to(context[:, None], shape), [-1])
        # The question goes with the choice, as in training; "" + " " + choice
        # tokenizes as the choice alone.
        second = tf.reshape(tf.strings.join(
            [tf.broadcast_to(question[:, None], shape), choices], separator=" "), [-1])
        packed = self._pack([first, second], pad_to_longest=True)  # [batch * C, L]
        length = tf.shape(packed[names.INPUT_WORD_IDS])[1]
        encoder_inputs = {k: tf.reshape(v, tf.stack([shape[0], shape[1], length]))
                          for k, v in packed.items()}  # [batch, C, L]
        logits = tf.cast(self._model(encoder_inputs), tf.float32)  # [batch, C]
        real = tf.strings.length(choices) > 0  # [batch, C]
        masked = tf.where(real, logits, float("-inf"))
        has_choice = tf.reduce_any(real, axis=1)  # [batch]
        # A -inf column: argmax has a column to pick even when C is 0.
        padded = tf.concat([masked, tf.fill(tf.stack([shape[0], 1]), float("-inf"))], 1)
        best = tf.argmax(padded, axis=1, output_type=tf.int32)
        probabilities = tf.nn.softmax(masked, axis=-1)  # NaN rows where no choice
        return {names.PROBABILITIES: tf.where(has_choice[:, None], probabilities, 0.0),
                names.LABEL_ID: tf.where(has_choice, best, -1)}


def export_multiple_choice(export_base, model_dir, warmup=None):
    """Writes a text-in multiple-choice SavedModel as the next version under
    `export_base`, from a fine-tuned multiple-choice directory (`model_dir`, as
    `run_multiple_choice` writes it: its sequence length and text settings).

    The SavedModel lands in `export_base/<n>/` with TF Serving warm-up requests (each
    question, then all of them in one request), and is checked (`check_serving_ops`:
    loads in stock TF Serving 2.19 and later) before it moves into place. Needs the
    TensorFlow Keras backend.

    Args:
        export_base: TF Serving's model base path.
        model_dir: a fine-tuned multiple-choice directory.
        warmup: `(context, question, choices)` triples for the warm-up requests;
            None uses built-in ones.

    Returns:
        The version directory written.
    """
    from keras_bert_app.model_dir import load_task_model, read_task_config
    from keras_bert_app.text.preprocessing_layer import BertTextPreprocessor

    check_tensorflow_backend("export_multiple_choice")
    task = read_task_config(model_dir)
    if task is None or task.task != names.MULTIPLE_CHOICE_TASK:
        raise ValueError(f"{model_dir} is not a fine-tuned multiple-choice directory: "
                         f"its {names.TASK_CONFIG_FILE} records task "
                         f"{getattr(task, 'task', None)!r}, not "
                         f"{names.MULTIPLE_CHOICE_TASK!r}.")
    requests = _warmup_requests(WARMUP_QUESTIONS if warmup is None else warmup)
    model, task = load_task_model(model_dir, names.MULTIPLE_CHOICE_TASK)
    # Dynamic padding: `pack(pad_to_longest=True)` pads to the request's longest pair.
    preprocessor = BertTextPreprocessor.from_model_dir(
        model_dir, sequence_length=task.max_seq_length, dynamic_padding=True)
    if preprocessor.tokenizer.vocab_size != model.encoder.config.vocab_size:
        raise ValueError(f"{os.path.join(model_dir, names.VOCAB_FILE)} has "
                         f"{preprocessor.tokenizer.vocab_size} tokens but the encoder's "
                         f"vocabulary has {model.encoder.config.vocab_size}.")
    module = _MultipleChoiceExport(model, preprocessor)
    version_dir = next_version_dir(export_base)
    with checked_export_dir(version_dir) as scratch:
        save_export(module, scratch)
        write_warmup_requests(scratch, requests)
    return version_dir


def _warmup_requests(questions):
    """One request per question, then one with all of them (fewer choices padded
    with "")."""
    questions = list(questions)
    for q in questions:
        if not (isinstance(q, (list, tuple)) and len(q) == 3 and isinstance(q[0], str)
                and isinstance(q[1], str) and isinstance(q[2], (list, tuple)) and q[2]
                and all(isinstance(c, str) and c for c in q[2])):
            raise ValueError(f"warmup: expected (context, question, choices) with "
                             f"non-empty choice strings, got {q!r:.200}.")
    if not questions:
        raise ValueError("warmup is empty; give at least one question (or None).")

    def request(part):
        width = max(len(q[2]) for q in part)
        rows = [[c.encode("utf-8") for c in q[2]] + [b""] * (width - len(q[2]))
                for q in part]
        return {names.CONTEXT: [q[0] for q in part], names.QUESTION: [q[1] for q in part],
                CHOICES: np.array(rows, dtype=object)}  # string [rows, width]

    return [request([q]) for q in questions] + (
        [request(questions)] if len(questions) > 1 else [])
