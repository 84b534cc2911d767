"""The data side of a classifier run: every input file read and checked up front, the
label vocabulary, text preprocessing, batches, predictions and paper metrics."""

import os

import numpy as np

from keras_bert_app import names
from keras_bert_app.data import classification_data as cd
from keras_bert_app.task_config import TaskConfig
from keras_bert_app.training import classification_metrics as cm

DEFAULT_METRIC = {names.SINGLE_LABEL: "accuracy", names.MULTI_LABEL: "f1",
                  names.REGRESSION: "pearson"}


def read_classifier_data(config):
    """Reads train/eval/predict data as `config` says (GLUE task or files) and checks
    all of it before any training: columns, labels of eval data against the training
    labels, the metric against the problem type."""
    glue = cd.glue_task(config.task_name) if config.task_name else None
    problem_type = config.problem_type or (glue.problem_type if glue else None) or (
        names.MULTI_LABEL if config.label_separator else names.SINGLE_LABEL)
    if glue and problem_type != glue.problem_type:
        raise ValueError(f"problem_type={problem_type!r} contradicts task {glue.name} "
                         f"({glue.problem_type}).")

    given = config.label_names or (glue.label_names if glue else None)
    skipped = []  # why each training row skip_bad_records dropped was bad

    def read(split, path, require_labels):
        # Only training rows are ever skipped (a label outside the given label set
        # among them): evaluation and prediction rows must line up with the results.
        skip = dict(skip_bad_records=True, label_names=given, skipped=skipped) \
            if split == "train" and config.skip_bad_records else {}
        if glue:
            return cd.read_examples(glue.file(config.data_dir, split), glue.spec(split),
                                    require_labels=require_labels, **skip)
        # Predict files may carry labels: then predictions.tsv shows them too.
        spec = cd.ColumnSpec(
            file_format=config.file_format, text_a_column=config.text_a_column,
            text_b_column=config.text_b_column, label_column=config.label_column,
            has_header=config.has_header, label_separator=config.label_separator,
            problem_type=problem_type)
        return cd.read_examples(path, spec, require_labels=require_labels, **skip)

    train = read("train", config.train_file, True) if config.do_train else None
    eval_sets = []
    if config.do_eval:
        splits = glue.eval_splits if glue else ("eval",)
        eval_sets = [(split, read(split, config.eval_file, True)) for split in splits]
    predict_set = None
    if config.do_predict:
        predict_set = read(glue.test_splits[0], config.predict_file, False) if glue \
            else read("predict", config.predict_file, False)
    pairs = {e.text_b is not None for e in [train, predict_set] + [e for _, e in eval_sets]
             if e is not None}
    if len(pairs) > 1:
        raise ValueError("Some input files have a second text (text_b) and others do "
                         "not: a model reads single texts or pairs, not both.")
    text_inputs = names.TEXT_INPUTS if pairs == {True} else names.TEXT_INPUTS[:1]

    label_names = None
    if problem_type != names.REGRESSION:
        label_names = cd.label_names_for(train, given) if train is not None else given
    metric = config.metric or (glue.metrics[0] if glue else DEFAULT_METRIC[problem_type])
    if metric not in cm.METRIC_NAMES[problem_type]:
        raise ValueError(f"metric={metric!r} is not computed for {problem_type} "
                         f"problems; choose one of {list(cm.METRIC_NAMES[problem_type])}.")
    data = ClassifierData(config, train, eval_sets, predict_set, problem_type,
                          label_names, text_inputs, metric, len(skipped))
    if label_names is not None or problem_type == names.REGRESSION:
        data.check_labels()
    return data


class ClassifierData:
    """What a classifier run knows about its data; built by `read_classifier_data`."""

    def __init__(self, config, train, eval_sets, predict_set, problem_type,
                 label_names, text_inputs, metric, skipped_train_records=0):
        self.config = config
        self.train, self.eval_sets, self.predict_set = train, eval_sets, predict_set
        self.problem_type = problem_type
        self.label_names = tuple(label_names) if label_names else None
        self.text_inputs = tuple(text_inputs)
        self.metric = metric
        self.skipped_train_records = skipped_train_records  # skip_bad_records' count
        self.max_seq_length = config.max_seq_length
        self.preprocessor = None
        self.vocab_file = self.text_config = None

    @property
    def task(self):
        return TaskConfig(task=names.CLASSIFICATION_TASK, heads=[names.CLASSIFIER_HEAD],
                          label_names=self.label_names, max_seq_length=self.max_seq_length,
                          problem_type=self.problem_type, text_inputs=self.text_inputs)

    def check_labels(self):
        """Every labelled file's labels are known (a one-line error naming file and
        line otherwise), before anything is trained."""
        for examples in [self.train] + [e for _, e in self.eval_sets]:
            if examples is not None:
                cd.label_ids(examples, self.label_names if self.problem_type !=
                             names.REGRESSION else None)

    def settings(self):
        settings = {"problem_type": self.problem_type, "label_names": self.label_names,
                    "text_inputs": self.text_inputs, "metric": self.metric,
                    "train_examples": len(self.train) if self.train else 0}
        if self.config.skip_bad_records:  # (absent otherwise: older run files match)
            settings["skipped_train_records"] = self.skipped_train_records
        return settings

    # ------------------------------------------------------------------- text

    def set_text(self, vocab_file, text_config):
        from keras_bert_app.text.preprocessing_layer import BertTextPreprocessor

        text_config.check_vocab(vocab_file)
        self.vocab_file, self.text_config = vocab_file, text_config
        self.preprocessor = BertTextPreprocessor(
            vocabulary=vocab_file, do_lower_case=text_config.do_lower_case,
            sequence_length=self.max_seq_length, dynamic_padding=self.config.dynamic_padding,
            max_chars_per_word=text_config.max_chars_per_word)

    def use_model_dir(self, directory, task):
        """Evaluation / prediction with a fine-tuned directory: its labels, problem
        type, texts and length are the ones the data must agree with."""
        from keras_bert_app.text.text_config import TextConfig

        if task.problem_type != self.problem_type:
            raise ValueError(f"{directory} holds a {task.problem_type} classifier; the "
                             f"data is {self.problem_type}.")
        if tuple(task.text_inputs) != self.text_inputs:
            raise ValueError(f"{directory} reads {list(task.text_inputs)}; the data has "
                             f"{list(self.text_inputs)}.")
        if self.label_names is not None and self.label_names != task.label_names:
            raise ValueError(f"label_names {list(self.label_names)} differ from "
                             f"{directory}'s {list(task.label_names)}.")
        self.label_names = task.label_names
        self.max_seq_length = task.max_seq_length
        self.check_labels()
        self.set_text(os.path.join(directory, names.VOCAB_FILE),
                      TextConfig.from_json_file(os.path.join(directory,
                                                             names.TEXT_CONFIG_FILE)))

    def _x(self, examples):
        text_a = np.asarray(examples.text_a, dtype=object)
        if examples.text_b is None:
            return text_a
        return (text_a, np.asarray(examples.text_b, dtype=object))

    def _y(self, examples):
        return cd.label_ids(examples, self.label_names)

    def train_dataset(self, batch_size, seed, skip_batches=0, pad_to_longest=False):
        """Endless shuffled batches; with dynamic padding, of examples of one length
        bucket each, padded to that bucket or (`pad_to_longest`: for a model trained
        without XLA, where a new length costs no compilation) to the batch's longest
        row. Either way the batches hold the same examples in the same order."""
        from keras_bert_app.text.text_dataset import text_dataset

        return text_dataset(self.preprocessor, self._x(self.train), self._y(self.train),
                            batch_size=batch_size, shuffle=True, seed=seed, repeat=True,
                            drop_remainder=True,
                            bucket_by_length=self.config.dynamic_padding,
                            skip_batches=skip_batches, pad_to_longest=pad_to_longest)

    # ------------------------------------------------------- outputs, metrics

    def predict(self, classifier, examples, batch_size):
        """`(outputs, loss)`: probabilities `[n, k]` (softmax, or sigmoid per label)
        or scores `[n]`, in the examples' order; the loss when they have labels."""
        from keras_bert_app.text.text_dataset import text_columns, text_dataset, token_lengths

        x = self._x(examples)
        order = np.arange(len(examples))
        if self.config.dynamic_padding:
            # Similar lengths in each batch (stable sort), so that each pads little;
            # the outputs go back to the examples' order below.
            order = np.argsort(token_lengths(self.preprocessor, text_columns(x)),
                               kind="stable")
            x = tuple(column[order] for column in x) if isinstance(x, tuple) else x[order]
        # Without XLA, each batch pads to its own longest row: a new length costs no
        # compilation there, and sorted batches then hold ~40% fewer positions than
        # length buckets (SST-2's dev set: predict 3.2 s → 2.5 s on 2 cores). With XLA
        # (`jit_compile`: Keras' "auto" on a GPU), each length would compile again.
        dataset = text_dataset(self.preprocessor, x, batch_size=batch_size,
                               pad_to_longest=not classifier.jit_compile)
        logits = np.empty([len(order), classifier.num_classes])
        logits[order] = np.asarray(classifier.predict(dataset, verbose=0), np.float64)
        if self.problem_type == names.REGRESSION:
            outputs = logits[:, 0]
        elif self.problem_type == names.MULTI_LABEL:
            outputs = 1 / (1 + np.exp(-logits))
        else:
            shifted = logits - logits.max(axis=1, keepdims=True)
            outputs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        loss = None
        if examples.labels is not None:
            y = self._y(examples)
            if self.problem_type == names.REGRESSION:
                loss = float(np.mean((outputs - y) ** 2))
            elif self.problem_type == names.MULTI_LABEL:
                p = np.clip(outputs, 1e-12, 1 - 1e-12)
                loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
            else:
                loss = float(-np.mean(np.log(np.clip(outputs[np.arange(len(y)), y],
                                                     1e-12, None))))
        return outputs.astype(np.float32), loss

    def metrics(self, examples, outputs):
        return cm.classification_metrics(self.problem_type, self._y(examples), outputs,
                                         self.label_names)

    def better(self, value, best):
        return value > best if cm.GREATER_IS_BETTER[self.metric] else value < best

    def write_predictions(self, path, outputs):
        cd.write_predictions(path, self.predict_set, self.problem_type, self.label_names,
                             outputs, label_separator=self.config.label_separator or ",")

    # ------------------------------------------------------------ model files

    def classifier_copy(self, classifier):
        """A float32 classifier without optimizer state holding `classifier`'s weights."""
        from keras_bert_app.model_dir import float32_classifier

        return float32_classifier(classifier)

    def save_model_dir(self, model_dir, classifier, weights_file=None):
        from keras_bert_app.model_dir import save_classifier_dir

        save_classifier_dir(model_dir, classifier, self.vocab_file, self.text_config,
                            self.task, weights_file=weights_file)
