"""Exports a fine-tuned SQuAD model as a text-in SavedModel for TF Serving.

`serving_default` takes strings `question` and `context` (`[batch]`, one question per
context; `batch` may be 0) and returns the answer; everything between runs inside
the graph: tokenisation with character offsets, Google's windows over a context of
any length, the encoder over all windows (a bounded number per call: its activations
stay bounded; the window and candidate tensors grow with the number of windows, tens
of MB for a 100,000-word context), the span search with the max-context and
max-answer-length rules, the best span over the windows and, for SQuAD v2.0 models,
the null decision with the threshold the model directory records.

| output       | dtype, shape       | meaning                                          |
|--------------|--------------------|--------------------------------------------------|
| `answer`     | string `[batch]`   | `context[start_char:end_char]`; `""` for none    |
| `start_char` | int32 `[batch]`    | character offsets into the context (code points, |
| `end_char`   | int32 `[batch]`    | as Python indexes a str); -1 with no answer      |
| `score`      | float32 `[batch]`  | start + end logit of the answer: the span's; for |
|              |                    | v2.0's "no answer" the null score; v1.1 models:  |
|              |                    | -inf when no span is valid (an empty context)    |
| `has_answer` | bool `[batch]`     | v2.0 models only: a valid span exists and null   |
|              |                    | score − its score <= the threshold               |
| `null_odds`  | float32 `[batch]`  | v2.0 only: null score − best span score          |

The answers are `run_squad`'s: the same windows and rules (the tests compare them
with `predictions.json`).
"""


import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.export.serving_layout import (check_tensorflow_backend,
                                                  next_version_dir, save_export,
                                                  serving_variables, traced_for_saving,
                                                  write_warmup_requests)
from keras_bert_app.export.serving_ops import checked_export_dir
from keras_bert_app.export.squad_graph import (SquadGraphSettings, best_answers,
                                               char_offsets, squad_windows)

# Windows the encoder runs at once: bounds the memory a long context needs.
WINDOWS_PER_CALL = 64

# Warm-up examples: a short context, and the same one repeated so that it spans
# several windows at any max_seq_length up to 512.
_PASSAGE = (
    "The Amazon rainforest covers much of the Amazon basin of South America. The "
    "basin encompasses seven million square kilometres, of which five and a half "
    "million square kilometres are covered by the rainforest. The region includes "
    "territory belonging to nine nations; the majority of the forest is contained "
    "within Brazil, with 60% of the rainforest, followed by Peru with 13% and "
    "Colombia with 10%.")
WARMUP_QUESTIONS = (
    ("Which country holds most of the Amazon rainforest?", _PASSAGE),
    ("How many nations have territory in the region?", " ".join([_PASSAGE] * 12)),
)


class _SquadExport(tf.Module):
    """The SavedModel's root: `serve` (the `serving_default` signature) plus the
    settings as variables for inspection."""

    def __init__(self, span_labeler, tokenizer, settings, windows_per_call):
        super().__init__()
        # Not attributes: the Keras model stays out of the SavedModel's object graph
        # (see serving_variables); the function closes over it.
        self._model = lambda inputs: span_labeler(inputs, training=False)
        self._tokenizer = tokenizer  # its tables and frozen variables are saved
        self._settings = settings
        self._windows_per_call = int(windows_per_call)
        for key, value in vars(settings).items():
            setattr(self, key, tf.Variable(value, trainable=False, name=key))
        specs = {name: tf.TensorSpec([None], tf.string, name=name)
                 for name in (names.QUESTION, names.CONTEXT)}
        self.serve = tf.function(self._answer, input_signature=[specs], autograph=False)
        with traced_for_saving():  # the save reuses this trace
            self._variables = serving_variables(self.serve.get_concrete_function())

    def _answer(self, inputs):
        settings = self._settings
        question, context = inputs[names.QUESTION], inputs[names.CONTEXT]
        same_rows = tf.debugging.assert_equal(
            tf.size(question), tf.size(context),
            message=f"{names.QUESTION} and {names.CONTEXT} must have the same number of "
                    "rows (one question per context)")
        with tf.control_dependencies([same_rows]):
            question, context = tf.identity(question), tf.identity(context)
        query = self._tokenizer.tokenize_pieces(question)[:, :settings.max_query_length]
        ids, byte_starts, byte_limits = [
            t.merge_dims(1, 2) for t in self._tokenizer.tokenize_with_offsets(context)]
        char_starts, char_ends = char_offsets(context, byte_starts, byte_limits)
        windows = squad_windows(query, ids, settings, self._tokenizer.special_ids)
        start_logits, end_logits = self._logits(windows)  # float32 [T, width]
        batch = tf.size(context, out_type=tf.int64)
        best = best_answers(start_logits, end_logits, windows, batch, settings)

        has_answer = best["has_span"]
        span_score = best["span_score"]
        outputs = {}
        if settings.version_2_with_negative:
            # As predictions.json: no valid span counts as a span score of 0.
            null_odds = best["null_score"] - tf.where(has_answer, span_score, 0.0)
            has_answer = tf.logical_and(
                has_answer, null_odds <= settings.null_score_diff_threshold)
            score = tf.where(has_answer, span_score, best["null_score"])
            outputs[names.HAS_ANSWER] = has_answer
            outputs[names.NULL_ODDS] = tf.cast(null_odds, tf.float32)
        else:
            score = span_score
        first = tf.where(has_answer, best["start_piece"], 0)
        last = tf.where(has_answer, best["end_piece"], 0)

        def at(values, index):  # a piece's value, or -1 without an answer
            return tf.where(has_answer, tf.gather(tf.concat(
                [tf.cast(values.flat_values, tf.int64), [-1]], 0), index), -1)

        start_byte, end_byte = at(byte_starts, first), at(byte_limits, last)
        answer = tf.strings.substr(context, tf.maximum(start_byte, 0),
                                   tf.maximum(end_byte - start_byte, 0), unit="BYTE")
        outputs.update({
            names.ANSWER: tf.where(has_answer, answer, ""),
            names.START_CHAR: tf.cast(at(char_starts, first), tf.int32),
            names.END_CHAR: tf.cast(at(char_ends, last), tf.int32),
            names.SCORE: tf.cast(score, tf.float32)})
        return outputs

    def _logits(self, windows):
        """The encoder over all windows, `windows_per_call` at a time (one call at
        least, so an empty batch still runs the model on zero rows)."""
        inputs = {name: windows[name] for name in names.ENCODER_INPUTS}
        total = tf.shape(inputs[names.INPUT_WORD_IDS])[0]
        size = self._windows_per_call
        calls = tf.maximum((total + size - 1) // size, 1)

        def body(i, starts, ends):
            part = {name: value[i * size:(i + 1) * size] for name, value in inputs.items()}
            logits = self._model(part)
            return (i + 1, starts.write(i, tf.cast(logits[names.START_LOGITS], tf.float32)),
                    ends.write(i, tf.cast(logits[names.END_LOGITS], tf.float32)))

        def array():
            return tf.TensorArray(tf.float32, size=calls, infer_shape=False,
                                  element_shape=tf.TensorShape([None, None]))

        # One call at a time: parallel iterations would hold several calls' memory.
        _, starts, ends = tf.while_loop(lambda i, *_: i < calls, body,
                                        (tf.constant(0), array(), array()),
                                        parallel_iterations=1)
        return starts.concat(), ends.concat()


def export_squad(export_base, model_dir=None, span_labeler=None, tokenizer=None,
                 task_config=None, windows_per_call=WINDOWS_PER_CALL, warmup=None):
    """Writes a text-in SQuAD SavedModel as the next version under `export_base`.

    Give a fine-tuned SQuAD directory (`model_dir`, as `run_squad` writes it), or a
    `BertSpanLabeler` with its `BertTokenizer` and `TaskConfig` (sequence length and
    the SQuAD settings). The export answers as `run_squad --do_predict` does with the
    settings the directory records (a prediction run that chose another n-best size,
    answer length or v2.0 threshold records it there).

    The SavedModel lands in `export_base/<n>/` with TF Serving warm-up requests, and is
    checked (`check_serving_ops`: loads in stock TF Serving 2.19 and later) before it
    moves into place. Needs the TensorFlow Keras backend.

    Args:
        export_base: TF Serving's model base path.
        model_dir: a fine-tuned SQuAD directory.
        span_labeler, tokenizer, task_config: the model, instead of `model_dir`.
        windows_per_call: windows the encoder runs at once.
        warmup: `(question, context)` pairs for the warm-up requests; None uses
            built-in ones (a short and a multi-window context).

    Returns:
        The version directory written.
    """
    check_tensorflow_backend("export_squad")
    span_labeler, tokenizer, task_config = _model_and_settings(
        model_dir, span_labeler, tokenizer, task_config)
    if windows_per_call < 1:
        raise ValueError(f"windows_per_call={windows_per_call} must be positive.")
    requests = _warmup_requests(WARMUP_QUESTIONS if warmup is None else warmup)
    module = _SquadExport(span_labeler, tokenizer,
                          SquadGraphSettings.from_task_config(task_config),
                          windows_per_call)
    version_dir = next_version_dir(export_base)
    with checked_export_dir(version_dir) as scratch:
        save_export(module, scratch)
        write_warmup_requests(scratch, requests)
    return version_dir


def _model_and_settings(model_dir, span_labeler, tokenizer, task_config):
    from keras_bert_app.model_dir import load_span_labeler
    from keras_bert_app.text.tokenizer import BertTokenizer

    in_memory = (span_labeler, tokenizer, task_config)
    if (model_dir is None) == all(x is None for x in in_memory) or \
            (model_dir is None and any(x is None for x in in_memory)):
        raise ValueError("export_squad takes a model_dir, or a span_labeler together "
                         "with its tokenizer and task_config.")
    if model_dir is not None:
        span_labeler, task_config = load_span_labeler(model_dir)
        tokenizer = BertTokenizer.from_model_dir(model_dir)
    if task_config.task != names.SQUAD_TASK:
        raise ValueError(f"task_config {task_config} is not a SQuAD task.")
    if span_labeler.encoder.config.vocab_size != tokenizer.vocab_size:
        raise ValueError(f"The tokenizer has {tokenizer.vocab_size} tokens but the "
                         f"encoder's vocabulary has "
                         f"{span_labeler.encoder.config.vocab_size}.")
    return span_labeler, tokenizer, task_config


def _warmup_requests(pairs):
    """One request per pair, then one with all of them."""
    pairs = list(pairs)
    if not pairs or not all(isinstance(p, (list, tuple)) and len(p) == 2 and
                            all(isinstance(t, str) for t in p) for p in pairs):
        raise ValueError(f"warmup: expected (question, context) pairs of strings, got "
                         f"{pairs!r:.200}.")
    requests = [{names.QUESTION: [q], names.CONTEXT: [c]} for q, c in pairs]
    if len(pairs) > 1:
        requests.append({names.QUESTION: [q for q, _ in pairs],
                         names.CONTEXT: [c for _, c in pairs]})
    return requests
