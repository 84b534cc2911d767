"""`run_ner`: fine-tunes a `BertTokenClassifier` for named-entity recognition (BERT's
first-piece recipe, long sentences through overlapping windows), evaluates it by
seqeval's rules at every checkpoint, keeps the best and ends in a fine-tuned model
directory; resumable after a kill (the runner every training run shares)."""

import dataclasses
import os

import keras
import numpy as np

from keras_bert_app import names
from keras_bert_app.training import classification, runner
from keras_bert_app.training.checkpointing import CheckpointManager, write_json
from keras_bert_app.training.distribution import create_distribution
from keras_bert_app.training.keras_workarounds import prepare_for_distribution
from keras_bert_app.training.optimizers import create_optimizer
from keras_bert_app.training.run_config import FineTuningSettings, positive

PREDICTIONS_FILE = names.NER_PREDICTIONS_FILE  # CoNLL columns, the predicted tag last
NER_RUN_FILE = names.NER_RUN_FILE
METRIC = "f1"  # chooses the best checkpoint
# What a resumed run must share with the run it continues.
RESUME_SETTINGS = ("train_file", "eval_file", "tag_column", "labels_file", "seed",
                   "train_batch_size", "max_seq_length", "doc_stride", "num_train_epochs",
                   "num_train_steps", "save_checkpoints_steps", "log_steps",
                   "steps_per_execution", "learning_rate", "warmup_proportion",
                   "optimizer", "weight_decay", "strict_iob2")


@dataclasses.dataclass(frozen=True, kw_only=True)
class NerRunConfig(FineTuningSettings):
    """Everything a NER run needs; `pipelines.run_ner`'s flags; model source,
    execution and schedule as every fine-tuning run (`FineTuningSettings`; an epoch
    is one pass over the training sentences).

    Files are CoNLL columns or JSON lines (`data/ner_data.py`); the tags come from
    `tag_column` (CoNLL; default the last). The label set is `labels_file`'s (one
    tag a line, in id order) or the training tags (`O` first, the rest sorted).
    Windows: `max_seq_length` positions, starts `doc_stride` pieces apart (default
    `max_seq_length // 2`; recorded in the model directory). With `do_eval` the
    model is evaluated at every checkpoint (default once an epoch) and the best
    entity F1 is what the model directory ends with; `strict_iob2` scores in
    seqeval's strict IOB2 mode instead of conlleval's chunks.
    """

    train_file: str = None
    eval_file: str = None
    predict_file: str = None
    do_eval: bool = False
    do_predict: bool = False
    tag_column: int = None
    labels_file: str = None
    strict_iob2: bool = False
    doc_stride: int = None
    eval_batch_size: int = 32
    save_checkpoints_steps: int = None  # default: one epoch

    def __post_init__(self):
        super().__post_init__()
        if not (self.do_train or self.do_eval or self.do_predict):
            raise ValueError("Nothing to do: set do_train, do_eval and/or do_predict.")
        for flag, file in (("do_train", self.train_file), ("do_eval", self.eval_file),
                           ("do_predict", self.predict_file)):
            if getattr(self, flag) and file is None:
                raise ValueError(f"{flag} needs {flag.replace('do_', '')}_file.")
        positive(self, "eval_batch_size")
        if self.doc_stride is not None:
            positive(self, "doc_stride")
        if self.max_seq_length < 3:
            raise ValueError(f"max_seq_length={self.max_seq_length} must be at least 3 "
                             "([CLS], one piece, [SEP]).")
        if self.tag_column is not None and (isinstance(self.tag_column, bool) or
                                            not isinstance(self.tag_column, int)):
            raise ValueError(f"tag_column={self.tag_column!r} must be an integer.")

    @property
    def stride(self):
        return self.doc_stride or self.max_seq_length // 2


def run_ner(config, distribution=None):
    """Fine-tunes, evaluates and/or predicts as `config` says; returns the results.

    Under `config.model_dir`: `checkpoints/` (and `best/`), `logs/train`, `logs/eval`,
    `ner_run.json`, the fine-tuned model directory (`task_config.json`: task `ner`,
    the tags in id order, `max_seq_length`, `settings.doc_stride`),
    `eval_results.json` and `predictions.txt`. Every input file is read and checked
    before anything is trained or written.
    """
    from keras_bert_app.data import ner_data

    files = {}
    for split, require in (("train", True), ("eval", True), ("predict", False)):
        if getattr(config, f"do_{split}"):
            path = getattr(config, f"{split}_file")
            files[split] = ner_data.read_ner_file(path, config.tag_column, require)
            _describe(files[split], split)
    trained = None if config.do_train else _trained_dir(config)
    labels = _label_names(config, files, trained)
    for split in ("train", "eval"):
        if split in files:
            ner_data.check_tags(files[split], labels, _label_source(config, trained))
    keras.utils.set_random_seed(config.seed)
    distribution = distribution or create_distribution(config.distribution_strategy,
                                                       config.tpu)
    manager = CheckpointManager(os.path.join(config.model_dir, "checkpoints"),
                                config.keep_checkpoint_max)
    if config.do_train:
        data = NerData(config, labels, config.stride, files.get("eval"))
        model, step = _train(config, data, files["train"], distribution, manager)
    else:
        data = NerData(config, labels, trained[1], files.get("eval"))
        with distribution.scope():
            model, step = _load(trained[0]), None
        data.set_tokenizer(*_text(trained[0]))
    results = {}
    if config.do_eval:
        results = _final_evaluation(config, data, model, manager, step,
                                    distribution.is_chief)
    if config.do_predict:
        _predict(config, data, model, files["predict"], distribution.is_chief)
    return results


def _describe(ner_file, split):
    words = ner_file.num_words
    print(f"{split}: {ner_file.path}: {len(ner_file.sentences)} sentences, {words} words "
          f"({ner_file.format}).")
    if ner_file.iob1_starts:
        print(f"{ner_file.path}: IOB1 tags (chunks start with I-): {ner_file.iob1_starts} "
              "chunk-starting I- tags converted to B- (IOB2).")
    elif ner_file.stray_inside:
        print(f"{ner_file.path}: IOB2 tags with {ner_file.stray_inside} I- tags after O "
              "or another type: entities by conlleval's rules, none with --strict_iob2.")


def _label_source(config, trained):
    if trained is not None:
        return f"the model {trained[0]}"
    return config.labels_file or config.train_file


def _label_names(config, files, trained):
    from keras_bert_app.data import ner_data

    given = ner_data.read_labels_file(config.labels_file) if config.labels_file else None
    if trained is not None:
        labels = trained[2]
        if given is not None and tuple(given) != tuple(labels):
            raise ValueError(f"labels_file {config.labels_file} lists {list(given)}; the "
                             f"model {trained[0]} was trained with {list(labels)}.")
        return labels
    return given or ner_data.labels_of(files["train"])


def _trained_dir(config):
    """`(directory, doc_stride, label names)` of the fine-tuned NER model that an
    evaluation or prediction without training uses: `model_dir` (a finished run)
    or `init_model_dir`; its window settings must be the run's."""
    from keras_bert_app.model_dir import read_task_config

    for directory in (config.model_dir, config.init_model_dir):
        task = read_task_config(directory) if directory else None
        if task is None or task.task != names.NER_TASK:
            continue
        stride = task.settings["doc_stride"]
        differ = [f"{k}={v!r} (the model: {m!r})" for k, v, m in (
            ("max_seq_length", config.max_seq_length, task.max_seq_length),
            ("doc_stride", config.doc_stride or stride, stride)) if v != m]
        if differ:
            raise ValueError(f"{directory} was trained with other window settings: "
                             + ", ".join(differ) + "; predict with the trained ones.")
        return directory, stride, task.label_names
    raise ValueError(f"do_train=false, and neither model_dir={config.model_dir} nor "
                     f"init_model_dir={config.init_model_dir} is a fine-tuned NER "
                     "directory: there is no model to evaluate or predict with.")


def _load(directory):
    from keras_bert_app.model_dir import load_task_model

    return load_task_model(directory, names.NER_TASK)[0]


def _text(directory):
    from keras_bert_app.text.text_config import TextConfig

    text_config = TextConfig.from_json_file(os.path.join(directory,
                                                         names.TEXT_CONFIG_FILE))
    return os.path.join(directory, names.VOCAB_FILE), text_config


class NerData:
    """Windows, predictions and scores of a run's data: what the classifier runner's
    evaluation at checkpoints (`classification._BestCheckpoint`) asks of its data."""

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
        self.tokenizer = BertTokenizer(vocab_file, lower_case=text_config.do_lower_case,
                                       max_chars_per_word=text_config.max_chars_per_word)

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
        from keras_bert_app.models import BertEncoder, BertTokenClassifier

        copy = BertTokenClassifier(BertEncoder(model.encoder.config),
                                   num_classes=len(self.label_names))
        copy.set_weights([np.asarray(w) for w in model.get_weights()])
        return copy

    def task(self):
        from keras_bert_app.model_dir import TaskConfig

        return TaskConfig(task=names.NER_TASK, heads=[names.TAGGER_HEAD],
                          label_names=self.label_names,
                          max_seq_length=self.config.max_seq_length,
                          settings={"doc_stride": self.doc_stride})


def window_logits(model, windows, batch_size, max_seq_length):
    """The model's logits `[N, max_seq_length, tags]` (float32) over all windows,
    each run at its length bucket (16, 32, 64 … max_seq_length): padding changes no
    real position's logits, and short windows cost little."""
    from keras_bert_app.text.preprocessing_layer import padding_lengths

    bounds = np.asarray(padding_lengths(max_seq_length))
    buckets = np.searchsorted(bounds, windows.lengths)
    logits = None
    for bucket in np.unique(buckets):
        rows = np.nonzero(buckets == bucket)[0]
        length = int(bounds[bucket])
        out = np.asarray(model.predict(windows.inputs(rows, length),
                                       batch_size=batch_size, verbose=0), np.float32)
        if logits is None:
            logits = np.zeros([len(windows), max_seq_length, out.shape[-1]], np.float32)
        logits[rows, :length] = out
    if logits is None:
        logits = np.zeros([0, max_seq_length, model.output_shape[-1]], np.float32)
    return logits


def _train_dataset(windows, batch_size, seed, skip_batches, max_seq_length):
    """Windows with at least one label, reshuffled every pass (the run's seed: a
    resumed run sees the same stream), batched within length buckets and cut to
    them; the batches already trained on skipped."""
    import tensorflow as tf

    from keras_bert_app.text.preprocessing_layer import padding_lengths

    keep = (windows.labels != names.IGNORE_LABEL_ID).any(axis=1)
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

    def cut(ids, mask, labels, bucket):
        length = tf.gather(tf.constant(bounds), bucket[0])
        x = {names.INPUT_WORD_IDS: ids[:, :length], names.INPUT_MASK: mask[:, :length],
             names.INPUT_TYPE_IDS: tf.zeros_like(ids[:, :length])}
        return x, labels[:, :length]

    return dataset.map(cut).prefetch(tf.data.AUTOTUNE)


def _train(config, data, train_file, distribution, manager):
    from keras_bert_app.model_dir import save_task_dir
    from keras_bert_app.models import BertEncoder, BertPretrainer, BertTokenClassifier

    model_config, vocab_file, text_config, source_weights = runner.model_sources(config)
    model_config.validate_sequence_length(config.max_seq_length)
    data.set_tokenizer(vocab_file, text_config)
    windows = data.windows(train_file, with_labels=True)
    if data.eval_file is not None:
        data.windows(data.eval_file, with_labels=True)  # input errors before training
    sentences = len(train_file.sentences)
    num_steps = config.num_train_steps or max(1, int(
        sentences * config.num_train_epochs / config.train_batch_size))
    save_steps, log_steps = classification._intervals(config, sentences)
    run_file = os.path.join(config.model_dir, NER_RUN_FILE)
    resume_step = manager.latest_step() or 0
    settings = {"label_names": data.label_names, "doc_stride": data.doc_stride,
                "train_sentences": sentences, "train_windows": len(windows)}
    if resume_step:
        runner.check_resume_settings(run_file, dataclasses.replace(
            config, num_train_steps=num_steps), RESUME_SETTINGS, data=settings)
        print(f"Resuming at step {resume_step} of {num_steps}.")
    if distribution.is_chief:
        runner.write_run_config(run_file, config, data=settings, num_train_steps=num_steps)
    dataset = _train_dataset(windows, config.train_batch_size, config.seed, resume_step,
                             config.max_seq_length)
    with distribution.scope():
        encoder = BertEncoder(model_config, dtype=config.mixed_precision)
        # The tagger reads the sequence output only: the pooler gets no gradient.
        encoder.get_layer("pooler").trainable = False
        model = BertTokenClassifier(encoder, num_classes=len(data.label_names))
        model.compile(optimizer=create_optimizer(
            config.learning_rate, num_steps, int(num_steps * config.warmup_proportion),
            optimizer=config.optimizer, weight_decay=config.weight_decay),
            jit_compile=config.jit_compile, steps_per_execution=config.steps_per_execution)
        model.optimizer.build(model.trainable_variables)
        prepare_for_distribution(model, distribution)
        step = manager.restore(model)
        if step == 0 and source_weights is not None:
            source_weights(BertPretrainer(encoder))
    if step < num_steps and distribution.is_chief:
        print(f"Fine-tuning for NER {distribution.describe()}: {sentences} sentences in "
              f"{len(windows)} windows, {len(data.label_names)} tags, steps {step} → "
              f"{num_steps}, batch {config.train_batch_size}.")
    callbacks = []
    if config.do_eval:
        callbacks.append(classification._BestCheckpoint(
            config, data, manager, save_steps, num_steps, log_steps,
            distribution.is_chief))
    runner.fit_steps(model, dataset, manager, start_step=step, num_train_steps=num_steps,
                     log_steps=log_steps, save_checkpoints_steps=save_steps,
                     global_batch_size=config.train_batch_size,
                     model_dir=config.model_dir, distribution=distribution,
                     verbose=config.verbose, callbacks=callbacks)
    # The model directory (and the final evaluation) holds float32 weights without
    # XLA: what the export serves; with do_eval, the best checkpoint's.
    best = classification._best_record(manager)
    model = data.classifier_copy(model)
    if config.do_eval and best is not None:
        model.load_weights(classification._best_weights(manager, best))
    if distribution.is_chief:
        save_task_dir(config.model_dir, model, vocab_file, text_config, data.task())
    return model, num_steps


def _final_evaluation(config, data, model, manager, step, chief=True):
    from keras_bert_app.training.ner_metrics import nested_scores

    best = classification._best_record(manager) if config.do_train else None
    if best is not None:
        flat = dict(best["results"])
        extra = {"global_step": step, "best_step": best["step"]}
    else:
        flat = classification._evaluate(config, data, model, step or 0, chief)
        extra = {"global_step": step} if step is not None else {}
    results = nested_scores(flat)
    results.update(extra, mode="strict_iob2" if config.strict_iob2 else "conlleval",
                   eval_file=config.eval_file,
                   eval_sentences=len(data.eval_file.sentences))
    if chief:
        write_json(os.path.join(config.model_dir, names.EVAL_RESULTS_FILE), results)
        print("eval_results: " + ", ".join(
            f"{k}={results[k]:.4f}" for k in ("f1", "precision", "recall")) +
              (f", loss={results['loss']:.4f}" if results.get("loss") is not None else "")
              + "".join(f", {k}={v}" for k, v in extra.items()))
    return results


def _predict(config, data, model, predict_file, chief=True):
    from keras_bert_app.data.ner_data import write_predictions

    predicted, _ = data.predict(model, predict_file, config.predict_batch_size)
    if not chief:
        return
    path = os.path.join(config.model_dir, PREDICTIONS_FILE)
    write_predictions(path, predict_file, data.tags(predicted))
    print(f"Wrote predictions for {len(predict_file.sentences)} sentences "
          f"({predict_file.num_words} words) to {path}")
