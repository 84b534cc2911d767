"""`run_ner`: fine-tunes a `BertTokenClassifier` for named-entity recognition (BERT's
first-piece recipe, long sentences through overlapping windows), evaluates it by
seqeval's rules at every checkpoint, keeps the best and ends in a fine-tuned model
directory; resumable after a kill (the runner every training run shares)."""

import dataclasses
import os

import keras

from keras_bert_app import names
from keras_bert_app.training import fine_tuning, runner, startup
from keras_bert_app.training.checkpointing import CheckpointManager, write_json
from keras_bert_app.training.distribution import create_distribution
from keras_bert_app.training.ner_inputs import NerData, labelled_windows, train_dataset
from keras_bert_app.training.run_config import FileTaskSettings, positive

PREDICTIONS_FILE = names.NER_PREDICTIONS_FILE  # CoNLL columns, the predicted tag last
NER_RUN_FILE = names.NER_RUN_FILE
# What a resumed run must share with the run it continues.
RESUME_SETTINGS = ("train_file", "eval_file", "tag_column", "labels_file", "seed",
                   "train_batch_size", "max_seq_length", "doc_stride", "num_train_epochs",
                   "num_train_steps", "save_checkpoints_steps", "log_steps",
                   "steps_per_execution", "learning_rate", "warmup_proportion",
                   "optimizer", "weight_decay", "strict_iob2", "skip_bad_records")


@dataclasses.dataclass(frozen=True, kw_only=True)
class NerRunConfig(FileTaskSettings):
    """Everything a NER run needs; `pipelines.run_ner`'s flags; model source,
    execution and schedule as every fine-tuning run (`FineTuningSettings`; an epoch
    is one pass over the training windows: one a sentence, more for a sentence
    longer than `max_seq_length`).

    Files are CoNLL columns or JSON lines (`data/ner_data.py`); the tags come from
    `tag_column` (CoNLL; default the last). The label set is `labels_file`'s (one
    tag a line, in id order) or the training tags (`O` first, the rest sorted).
    Windows: `max_seq_length` positions, starts `doc_stride` pieces apart (default
    `max_seq_length // 2`; recorded in the model directory). With `do_eval` the
    model is evaluated at every checkpoint (default once an epoch) and the best
    entity F1 is what the model directory ends with; `strict_iob2` scores in
    seqeval's strict IOB2 mode instead of conlleval's chunks.
    """

    tag_column: int = None
    labels_file: str = None
    strict_iob2: bool = False
    doc_stride: int = None
    eval_batch_size: int = 32

    def __post_init__(self):
        super().__post_init__()
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
    startup.begin()
    from keras_bert_app.data import ner_data

    files, skipped = {}, []  # skipped: why each dropped training sentence was bad
    for split, require in (("train", True), ("eval", True), ("predict", False)):
        if getattr(config, f"do_{split}"):
            path = getattr(config, f"{split}_file")
            # Only training sentences are ever skipped: evaluation and prediction
            # sentences must line up with their results.
            skip = split == "train" and config.skip_bad_records
            files[split] = ner_data.read_ner_file(path, config.tag_column, require,
                                                  skip_bad_records=skip, skipped=skipped)
            _describe(files[split], split)
    trained = None if config.do_train else _trained_dir(config)
    labels = _label_names(config, files, trained)
    for split in ("train", "eval"):
        if split in files:
            ner_data.check_tags(files[split], labels, _label_source(config, trained),
                                skip_bad_records=split == "train" and
                                config.skip_bad_records, skipped=skipped)
    keras.utils.set_random_seed(config.seed)
    distribution = distribution or create_distribution(config.distribution_strategy,
                                                       config.tpu)
    manager = CheckpointManager(os.path.join(config.model_dir, "checkpoints"),
                                config.keep_checkpoint_max)
    if config.do_train:
        data = NerData(config, labels, config.stride, files.get("eval"))
        model, step = _train(config, data, files["train"], distribution, manager,
                             len(skipped))
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


def _train(config, data, train_file, distribution, manager, skipped=0):
    """`skipped`: the training sentences `skip_bad_records` dropped (recorded)."""
    from keras_bert_app.model_dir import save_task_dir
    from keras_bert_app.models import BertTokenClassifier

    model_config, vocab_file, text_config, source_weights = runner.model_sources(config)
    model_config.validate_sequence_length(config.max_seq_length)
    data.set_tokenizer(vocab_file, text_config)
    windows = data.windows(train_file, with_labels=True)
    if data.eval_file is not None:
        data.windows(data.eval_file, with_labels=True)  # input errors before training
    sentences = len(train_file.sentences)
    # An epoch is one pass over what is trained on: the windows holding a label (one
    # a sentence unless sentences outgrow max_seq_length).
    trained = int(labelled_windows(windows).sum())
    plan = fine_tuning.schedule(config, trained)
    settings = {"label_names": data.label_names, "doc_stride": data.doc_stride,
                "train_sentences": sentences, "train_windows": trained}
    if config.skip_bad_records:  # (absent otherwise: earlier runs' files still match)
        settings["skipped_train_records"] = skipped
    resume_step = fine_tuning.resume_or_record(
        config, os.path.join(config.model_dir, NER_RUN_FILE), RESUME_SETTINGS, manager,
        plan.num_steps, settings, distribution.is_chief)
    dataset = train_dataset(windows, config.train_batch_size, config.seed, resume_step,
                             config.max_seq_length)

    def build(encoder):
        # The tagger reads the sequence output only: the pooler gets no gradient.
        encoder.get_layer("pooler").trainable = False
        return BertTokenClassifier(encoder, num_classes=len(data.label_names))

    model, step, compilation = fine_tuning.compiled_task_model(
        config, model_config, build, num_steps=plan.num_steps, manager=manager,
        distribution=distribution, initialize=fine_tuning.pretrained_weights(source_weights))
    if step < plan.num_steps and distribution.is_chief:
        print(f"Fine-tuning for NER {distribution.describe()}: {sentences} sentences in "
              f"{trained} windows, {len(data.label_names)} tags, steps {step} → "
              f"{plan.num_steps}, batch {config.train_batch_size}.")
    # The model directory (and the final evaluation) holds float32 weights without
    # XLA: what the export serves; with do_eval, the best checkpoint's.
    model, weights_file = fine_tuning.train_and_keep_best(
        config, data, model, dataset, manager, distribution, plan, step, compilation)
    if distribution.is_chief:
        save_task_dir(config.model_dir, model, vocab_file, text_config, data.task(),
                      weights_file=weights_file)
    return model, plan.num_steps


def _final_evaluation(config, data, model, manager, step, chief=True):
    from keras_bert_app.training.ner_metrics import nested_scores

    flat, extra = fine_tuning.final_results(config, data, model, manager, step, chief)
    extra.pop("metric", None)
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
