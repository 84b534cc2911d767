"""The data of a multiple-choice run: its files read and checked, each (context,
choice) pair tokenized once, training batches with padded choices masked out of the
softmax, predictions, accuracy and the predictions file.

What `run_multiple_choice` hands to the evaluation and best-checkpoint machinery of
`run_classifier` (`eval_sets`, `predict`, `metrics`, `metric`, `better`,
`classifier_copy`), so that is reused as it is.
"""

import os

import keras
import numpy as np

from keras_bert_app import names

ACCURACY = "accuracy"
# The logit of a padded choice: exp() of it minus any real logit is exactly 0 in
# float32, so a padded choice takes no probability and no gradient.
_PADDED_LOGIT = -1e9
# Pairs tokenized per call (bounds the memory of the ragged pieces).
_ENCODE_CHUNK = 4096


def read_multiple_choice_data(config):
    """Reads every file the run names (train, eval, predict) before anything else."""
    from keras_bert_app.data.multiple_choice_data import read_multiple_choice

    # Only training questions are ever skipped: evaluation and prediction rows must
    # line up with their results.
    skipped = []  # why each question skip_bad_records dropped was bad
    train = read_multiple_choice(config.train_file, skip_bad_records=config.skip_bad_records,
                                 skipped=skipped) if config.do_train else None
    eval_sets = [("eval", read_multiple_choice(config.eval_file))] \
        if config.do_eval else []
    predict_set = read_multiple_choice(config.predict_file, require_labels=False) \
        if config.do_predict else None
    return MultipleChoiceData(config, train, eval_sets, predict_set, len(skipped))


class _Encoded:
    """The pairs of a list of examples, tokenized: `word_ids` int32 `[pairs, seq]`
    (padded to the sequence length), `lengths` (real tokens) and `first` (tokens of
    `[CLS] context [SEP]`) int32 `[pairs]`, and `splits` int64 `[examples + 1]`:
    example i's pairs are `splits[i]:splits[i + 1]`. The mask and type ids follow
    from the two lengths, so they are not stored."""

    def __init__(self, preprocessor, examples):
        import tensorflow as tf

        counts = [len(e.choices) for e in examples]
        self.splits = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        first = np.array([e.context for e in examples for _ in e.choices], object)
        second = np.array([s for e in examples for s in e.second_segments()], object)
        parts = {k: [] for k in names.ENCODER_INPUTS}
        for start in range(0, len(first), _ENCODE_CHUNK):
            packed = preprocessor((tf.constant(first[start:start + _ENCODE_CHUNK]),
                                   tf.constant(second[start:start + _ENCODE_CHUNK])))
            for k in parts:
                parts[k].append(keras.ops.convert_to_numpy(packed[k]).astype(np.int32))
        arrays = {k: np.concatenate(v) for k, v in parts.items()}
        self.word_ids = arrays[names.INPUT_WORD_IDS]
        self.lengths = arrays[names.INPUT_MASK].sum(axis=1).astype(np.int32)
        self.first = self.lengths - arrays[names.INPUT_TYPE_IDS].sum(axis=1).astype(np.int32)


def _inputs(word_ids, lengths, first, length):
    """The three encoder inputs of pairs `[..., seq]`, cut to `length` positions."""
    import tensorflow as tf

    positions = tf.range(length, dtype=tf.int32)
    mask = tf.cast(positions < lengths[..., None], tf.int32)
    type_ids = tf.cast(positions >= first[..., None], tf.int32) * mask
    return {names.INPUT_WORD_IDS: word_ids[..., :length], names.INPUT_MASK: mask,
            names.INPUT_TYPE_IDS: type_ids}


def _bucket(lengths, sequence_length):
    """The padded length of a batch: the first of `padding_lengths` that holds its
    longest pair (a handful of shapes: each is traced / compiled once)."""
    import tensorflow as tf

    from keras_bert_app.text.preprocessing_layer import padding_lengths

    buckets = tf.constant(padding_lengths(sequence_length), tf.int32)
    longest = tf.reduce_max(tf.concat([tf.reshape(lengths, [-1]), [1]], 0))
    return tf.gather(buckets, tf.argmax(tf.cast(buckets >= longest, tf.int32)))


@keras.saving.register_keras_serializable(package="keras_bert_app")
class MaskPaddedChoices(keras.layers.Layer):
    """Logits `[batch, C]` of choices whose `input_mask [batch, C, seq]` is all 0 (a
    padded choice: not even `[CLS]`) become -1e9: no probability, no gradient."""

    def call(self, logits, input_mask):
        real = input_mask[:, :, 0] > 0
        return keras.ops.where(real, logits, keras.ops.cast(_PADDED_LOGIT, logits.dtype))

    def compute_output_spec(self, logits, input_mask):
        return keras.KerasTensor(logits.shape, dtype=logits.dtype)


def training_model(choice_model):
    """`choice_model` (a `BertMultipleChoice`) with padded choices masked: what is
    trained, so that a batch may hold questions with different numbers of choices
    (the choice axis padded to the batch's largest count)."""
    from keras_bert_app.models.encoder import encoder_inputs

    inputs = encoder_inputs(prefix_shape=(None,))
    logits = MaskPaddedChoices(dtype="float32", name="mask_padded_choices")(
        choice_model(inputs), inputs[names.INPUT_MASK])
    return keras.Model(inputs, logits, name="masked_multiple_choice")


def choice_model_of(model):
    """The `BertMultipleChoice` of `model` (itself, or inside `training_model`)."""
    from keras_bert_app.models import BertMultipleChoice

    if isinstance(model, BertMultipleChoice):
        return model
    return next(layer for layer in model.layers if isinstance(layer, BertMultipleChoice))


class MultipleChoiceData:
    """The examples of a run and what the runner does with them."""

    metric = ACCURACY
    problem_type = None  # not a classifier: no confusion matrix

    def __init__(self, config, train, eval_sets, predict_set, skipped_train_records=0):
        self.config = config
        self.skipped_train_records = skipped_train_records  # skip_bad_records' count
        self.train, self.eval_sets, self.predict_set = train, eval_sets, predict_set
        self.max_seq_length = config.max_seq_length
        self.preprocessor = None
        self._encoded = {}

    def settings(self):
        settings = {"train_examples": len(self.train) if self.train else 0}
        if self.config.skip_bad_records:  # (absent otherwise: older run files match)
            settings["skipped_train_records"] = self.skipped_train_records
        return settings

    def set_text(self, vocab_file, text_config, max_seq_length):
        from keras_bert_app.text.preprocessing_layer import BertTextPreprocessor

        text_config.check_vocab(vocab_file)
        self.vocab_file, self.text_config = vocab_file, text_config
        self.max_seq_length = max_seq_length
        self.preprocessor = BertTextPreprocessor(
            vocabulary=vocab_file, do_lower_case=text_config.do_lower_case,
            sequence_length=max_seq_length,
            max_chars_per_word=text_config.max_chars_per_word)
        self._encoded = {}

    def encoded(self, examples):
        if id(examples) not in self._encoded:
            self._encoded[id(examples)] = _Encoded(self.preprocessor, examples)
        return self._encoded[id(examples)]

    def train_dataset(self, batch_size, seed, skip_batches=0):
        """`(inputs [batch, C, length], labels [batch])` batches, forever: reshuffled
        every pass with `seed` (a resumed run skips the batches it trained on); C is
        the batch's largest choice count, `length` its length bucket."""
        import tensorflow as tf

        from keras_bert_app.tf_data_options import dataset_options

        encoded = self.encoded(self.train)
        splits = tf.constant(encoded.splits)
        # [examples, (choices), ...]: one batch is a gather of example indices.
        ragged = [tf.RaggedTensor.from_row_splits(tf.constant(v), splits)
                  for v in (encoded.word_ids, encoded.lengths, encoded.first)]
        labels = tf.constant([e.label for e in self.train], tf.int32)
        sequence_length = self.max_seq_length

        @tf.autograph.experimental.do_not_convert  # pure graph code
        def batch(indices):
            word_ids, lengths, first = [tf.gather(r, indices).to_tensor() for r in ragged]
            length = _bucket(lengths, sequence_length)
            return _inputs(word_ids, lengths, first, length), tf.gather(labels, indices)

        count = len(self.train)
        return (tf.data.Dataset.range(count)
                .shuffle(count, seed=seed, reshuffle_each_iteration=True).repeat()
                .batch(batch_size, drop_remainder=True).skip(skip_batches)
                .map(batch).prefetch(2).with_options(dataset_options()))

    def predict(self, model, examples, batch_size):
        """`(probabilities, loss)`: probabilities float32 `[n, max choices]` (0 past an
        example's own choices), in the examples' order; the mean cross-entropy when
        every example has a label, else None.

        Each choice's logit depends on its own pair only, so the pairs are scored as
        questions of one choice each, sorted by length (little padding), and the
        softmax is taken per question afterwards: the same probabilities as scoring
        each question whole."""
        import tensorflow as tf

        from keras_bert_app.tf_data_options import dataset_options

        encoded = self.encoded(examples)
        order = np.argsort(encoded.lengths, kind="stable")
        sequence_length = self.max_seq_length
        per_batch = batch_size * max(len(e.choices) for e in examples)

        @tf.autograph.experimental.do_not_convert  # pure graph code
        def batch(rows):
            word_ids, lengths, first = [tf.gather(tf.constant(v), rows)[:, None] for v in (
                encoded.word_ids, encoded.lengths, encoded.first)]  # [rows, 1, ...]
            return _inputs(word_ids, lengths, first, _bucket(lengths, sequence_length))

        dataset = tf.data.Dataset.from_tensor_slices(order).batch(per_batch).map(
            batch).with_options(dataset_options())
        logits = np.empty(len(order), np.float64)
        logits[order] = np.asarray(model.predict(dataset, verbose=0), np.float64)[:, 0]
        width = max(len(e.choices) for e in examples)
        probabilities = np.zeros([len(examples), width], np.float64)
        for i, (start, stop) in enumerate(zip(encoded.splits[:-1], encoded.splits[1:])):
            row = np.exp(logits[start:stop] - logits[start:stop].max())
            probabilities[i, :stop - start] = row / row.sum()
        loss = None
        if all(e.label is not None for e in examples):
            chosen = probabilities[np.arange(len(examples)), [e.label for e in examples]]
            loss = float(-np.mean(np.log(np.clip(chosen, 1e-12, None))))
        return probabilities.astype(np.float32), loss

    def metrics(self, examples, outputs):
        labels = np.array([e.label for e in examples])
        return {ACCURACY: float(np.mean(np.argmax(outputs, axis=1) == labels))}

    def better(self, value, best):
        return value > best

    def classifier_copy(self, model):
        """A float32 `BertMultipleChoice` without optimizer state holding `model`'s
        weights (what best checkpoints and the model directory hold)."""
        from keras_bert_app.layers.initializers import weights_set_after
        from keras_bert_app.models import BertEncoder, BertMultipleChoice

        model = choice_model_of(model)
        with weights_set_after():  # every weight is set below
            copy = BertMultipleChoice(BertEncoder(model.encoder.config),
                                      dropout=model.dropout)
        copy.set_weights([np.asarray(w) for w in model.get_weights()])
        return copy

    def save_model_dir(self, model_dir, model, weights_file=None):
        """`weights_file`: `model`'s weights as `save_weights` wrote them (the best
        file, written from this plain copy), linked instead of written again."""
        from keras_bert_app.model_dir import save_task_dir
        from keras_bert_app.task_config import TaskConfig

        task = TaskConfig(task=names.MULTIPLE_CHOICE_TASK, heads=[names.CHOICE_HEAD],
                          max_seq_length=self.max_seq_length)
        if weights_file is not None and choice_model_of(model) is not model:
            raise ValueError("weights_file is for the plain BertMultipleChoice it was "
                             "written from, not a model wrapping it.")
        save_task_dir(model_dir, choice_model_of(model), self.vocab_file,
                      self.text_config, task, weights_file=weights_file)

    def write_predictions(self, path, outputs):
        """TSV: index, label (when the file has them), prediction (the chosen
        index), prob_0 … prob_<k-1> (k: the most choices of a question; cells past
        a question's own choices are empty). Written whole or not at all."""
        examples = self.predict_set
        labelled = any(e.label is not None for e in examples)
        width = outputs.shape[1]
        header = ["index"] + (["label"] if labelled else []) + ["prediction"] + [
            f"prob_{i}" for i in range(width)]
        lines = ["\t".join(header)]
        for i, (example, row) in enumerate(zip(examples, outputs)):
            count = len(example.choices)
            cells = [str(i)] + (["" if example.label is None else str(example.label)]
                                if labelled else [])
            cells += [str(int(np.argmax(row[:count])))]
            cells += [f"{p:.7g}" for p in row[:count]] + [""] * (width - count)
            lines.append("\t".join(cells))
        partial = path + ".partial"
        with open(partial, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(partial, path)
