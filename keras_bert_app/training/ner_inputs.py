"""The data of a NER run: the files' windows made once, the training stream, the
model's logits over windows at their length buckets, predictions per word and entity
scores — what the fine-tuning runner's evaluation at checkpoints asks of a task's data
(`fine_tuning`'s protocol)."""

import numpy as np

from keras_bert_app import names

METRIC = "f1"  # chooses the best checkpoint


class NerData:
    """Windows, predictions and scores of a run's data: what the classifier runner's
    evaluation at checkpoints (`fine_tuning.BestCheckpoint`) asks of its data."""

    metric = METRIC
    problem_type = names.NER_TASK  # (no confusion matrix: not single_label)

    def __init__(self, config, label_names, doc_stride, eval_file):
        self.config, self.label_names, self.doc_stride = config, tuple(label_names), \
            doc_stride
        self.eval_file = eval_file
        self.eval_sets = [("eval", eval_file)] if eval_file is not None else []
        self.tokenizer = None
        self._windows = {}

    def set_tokenizer(self, vocab_file, text_config):
        from keras_bert_app.text.tokenizer import BertTokenizer

        self.vocab_file, self.text_config = vocab_file, text_config
        self.tokenizer = BertTokenizer.from_text_config(vocab_file, text_config)

    def tag_ids(self, ner_file):
        index = {tag: i for i, tag in enumerate(self.label_names)}
        return [[index[t] for t in tags] for tags in ner_file.tags]

    def windows(self, ner_file, with_labels=False):
        """The file's windows, made once (evaluation reuses them at every checkpoint)."""
        from keras_bert_app.data.ner_features import ner_windows

        key = (id(ner_file), with_labels)
        if key not in self._windows:
            try:
                self._windows[key] = ner_windows(
                    ner_file.sentences, self.tokenizer, self.config.max_seq_length,
                    self.doc_stride, self.tag_ids(ner_file) if with_labels else None)
            except ValueError as error:
                raise ValueError(f"{ner_file.path}: {error}") from None
        return self._windows[key]

    def predict(self, model, ner_file, batch_size):
        """`(tag ids per sentence, mean cross-entropy over the labelled pieces of
        evaluation data; 0.0 for other data)`."""
        from keras_bert_app.data.ner_features import word_predictions

        # Labels (for the loss) of evaluation data only: its tags were checked.
        scored = ner_file is self.eval_file
        windows = self.windows(ner_file, with_labels=scored)
        logits = window_logits(model, windows, batch_size, self.config.max_seq_length)
        predicted = word_predictions(windows, logits, ner_file.sentences,
                                     self.label_names.index("O"))
        loss = 0.0
        labelled = windows.labels != names.IGNORE_LABEL_ID
        if scored and labelled.any():
            chosen = logits[labelled].astype(np.float64)  # [pieces, tags]
            top = chosen.max(axis=-1, keepdims=True)
            log_z = np.log(np.exp(chosen - top).sum(axis=-1)) + top[:, 0]
            loss = float(np.mean(log_z - chosen[np.arange(len(chosen)),
                                                windows.labels[labelled]]))
        return predicted, loss

    def tags(self, predicted):
        return [[self.label_names[i] for i in sentence] for sentence in predicted]

    def metrics(self, ner_file, predicted):
        from keras_bert_app.training.ner_metrics import entity_scores, flat_scores

        return flat_scores(entity_scores(ner_file.tags, self.tags(predicted),
                                         strict=self.config.strict_iob2))

    def better(self, value, best):
        return value > best

    def classifier_copy(self, model):
        """A float32 copy without optimizer state (best checkpoints, model dir)."""
        from keras_bert_app.layers.initializers import weights_set_after
        from keras_bert_app.models import BertEncoder, BertTokenClassifier

        with weights_set_after():  # every weight is set below
            copy = BertTokenClassifier(BertEncoder(model.encoder.config),
                                       num_classes=len(self.label_names))
        copy.set_weights([np.asarray(w) for w in model.get_weights()])
        return copy

    def task(self):
        from keras_bert_app.task_config import TaskConfig

        return TaskConfig(task=names.NER_TASK, heads=[names.TAGGER_HEAD],
                          label_names=self.label_names,
                          max_seq_length=self.config.max_seq_length,
                          settings={"doc_stride": self.doc_stride,
                                    "strict_iob2": self.config.strict_iob2})


def window_logits(model, windows, batch_size, max_seq_length):
    """The model's logits `[N, max_seq_length, tags]` (float32) over all windows,
    each run at its length bucket (16, 32, 64 … max_seq_length): padding changes no
    real position's logits, and short windows cost little."""
    import tensorflow as tf

    from keras_bert_app.text.preprocessing_layer import padding_lengths
    from keras_bert_app.tf_data_options import finish
    from keras_bert_app.tf_tracing import trace_predict_once

    bounds = np.asarray(padding_lengths(max_seq_length))
    buckets = np.searchsorted(bounds, windows.lengths)
    logits = None
    for bucket in np.unique(buckets):
        rows = np.nonzero(buckets == bucket)[0]
        length = int(bounds[bucket])
        # Our own finished dataset, not arrays: Keras' pipeline for arrays keeps the
        # autotuning model on, and its iterator's teardown waited up to 1.2 s per call.
        dataset = finish(tf.data.Dataset.from_tensor_slices(
            windows.inputs(rows, length)).batch(batch_size))
        if logits is None:
            # One trace for every bucket's length, not one per length.
            trace_predict_once(model, dataset, any_length=True)
        out = np.asarray(model.predict(dataset, verbose=0), np.float32)
        if logits is None:
            logits = np.zeros([len(windows), max_seq_length, out.shape[-1]], np.float32)
        logits[rows, :length] = out
    if logits is None:
        logits = np.zeros([0, max_seq_length, model.output_shape[-1]], np.float32)
    return logits


def labelled_windows(windows):
    """bool [windows]: the windows with at least one labelled piece (each word's tag
    is learnt in one window; a window of only context pieces has nothing to learn)."""
    return (windows.labels != names.IGNORE_LABEL_ID).any(axis=1)


def train_dataset(windows, batch_size, seed, skip_batches, max_seq_length):
    """Windows with at least one label, reshuffled every pass (the run's seed: a
    resumed run sees the same stream), batched within length buckets and cut to
    them; the batches already trained on skipped."""
    import tensorflow as tf

    from keras_bert_app.tf_data_options import finish
    from keras_bert_app.text.preprocessing_layer import padding_lengths

    keep = labelled_windows(windows)
    bounds = np.asarray(padding_lengths(max_seq_length), np.int64)
    buckets = np.searchsorted(bounds, windows.lengths[keep]).astype(np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((
        windows.input_word_ids[keep], windows.input_mask[keep], windows.labels[keep],
        buckets)).shuffle(int(keep.sum()), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.repeat().group_by_window(
        key_func=lambda *e: e[-1], window_size=batch_size,
        reduce_func=lambda key, w: w.batch(batch_size, drop_remainder=True))
    if skip_batches:
        dataset = dataset.skip(skip_batches)

    @tf.autograph.experimental.do_not_convert  # pure graph code: no conversion cost
    def cut(ids, mask, labels, bucket):
        length = tf.gather(tf.constant(bounds), bucket[0])
        x = {names.INPUT_WORD_IDS: ids[:, :length], names.INPUT_MASK: mask[:, :length],
             names.INPUT_TYPE_IDS: tf.zeros_like(ids[:, :length])}
        return x, labels[:, :length]

    return finish(dataset.map(cut).prefetch(tf.data.AUTOTUNE))
