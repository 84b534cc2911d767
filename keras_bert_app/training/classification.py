"""`run_classifier`: fine-tunes a `BertClassifier` on sentence or sentence-pair data,
evaluates it as papers report, keeps the best checkpoint and ends in a fine-tuned model
directory; resumable after a kill like pre-training (the same runner)."""

import dataclasses
import os

import keras

from keras_bert_app import names
from keras_bert_app.training import fine_tuning, runner, startup
from keras_bert_app.training.classifier_inputs import ClassifierData, read_classifier_data
from keras_bert_app.training.compilation import resolve_jit_compile
from keras_bert_app.training.checkpointing import CheckpointManager, write_json
from keras_bert_app.training.distribution import create_distribution
from keras_bert_app.training.run_config import FineTuningSettings, positive
from keras_bert_app.training.runner import one_of

# What a resumed run must share with the run it continues.
RESUME_SETTINGS = ("task_name", "data_dir", "train_file", "eval_file", "seed",
                   "train_batch_size", "max_seq_length", "num_train_epochs",
                   "num_train_steps", "dynamic_padding", "label_names", "problem_type",
                   "text_a_column", "text_b_column", "label_column", "label_separator",
                   "metric", "save_checkpoints_steps", "log_steps",
                   "steps_per_execution", "learning_rate", "warmup_proportion",
                   "optimizer", "weight_decay", "skip_bad_records")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClassifierRunConfig(FineTuningSettings):
    """Everything a classifier fine-tuning run needs; `pipelines.run_classifier`'s
    flags; model source, execution and schedule as every fine-tuning run
    (`FineTuningSettings`; an epoch is one pass over the training rows).

    Data: a GLUE `task_name` with its `data_dir` (train.tsv, dev.tsv or MNLI's
    dev_matched/dev_mismatched, test.tsv), or `train_file`/`eval_file`/
    `predict_file` (TSV, CSV or JSON lines) with column settings. With `do_eval`, the
    model is evaluated at every checkpoint (every `save_checkpoints_steps`, by default
    once an epoch) and the best on `metric` is what the model directory ends with.
    """

    task_name: str = None
    data_dir: str = None
    train_file: str = None
    eval_file: str = None
    predict_file: str = None
    file_format: str = "auto"
    text_a_column: object = None
    text_b_column: object = None
    label_column: object = None
    has_header: bool = True
    label_separator: str = None
    problem_type: str = None  # from the task, else single_label (multi_label with a separator)
    label_names: tuple = None  # default: the training labels, sorted
    do_eval: bool = False
    do_predict: bool = False
    dynamic_padding: bool = True
    eval_batch_size: int = 8
    metric: str = None  # default: the task's paper metric
    save_checkpoints_steps: int = None  # default: one epoch

    def __post_init__(self):
        super().__post_init__()
        if self.problem_type is not None:
            one_of("problem_type", self.problem_type, names.PROBLEM_TYPES)
        if not (self.do_train or self.do_eval or self.do_predict):
            raise ValueError("Nothing to do: set do_train, do_eval and/or do_predict.")
        if self.task_name is None and self.data_dir is not None:
            raise ValueError("data_dir goes with task_name; give train_file/eval_file/"
                             "predict_file for other data.")
        if self.task_name is not None and (self.data_dir is None or any(
                (self.train_file, self.eval_file, self.predict_file))):
            raise ValueError("task_name reads data_dir's GLUE files: give data_dir and "
                             "no train_file/eval_file/predict_file.")
        for flag, file in (("do_train", self.train_file), ("do_eval", self.eval_file),
                           ("do_predict", self.predict_file)):
            if getattr(self, flag) and self.task_name is None and file is None:
                raise ValueError(f"{flag} needs {flag.replace('do_', '')}_file "
                                 "(or task_name + data_dir).")
        positive(self, "eval_batch_size")
        if self.max_seq_length < 3:
            raise ValueError(f"max_seq_length={self.max_seq_length} must be at least 3.")


def run_classifier(config, distribution=None):
    """Fine-tunes, evaluates and/or predicts as `config` says; returns the results.

    Under `config.model_dir`: `checkpoints/` (model + optimizer; the last one without
    the optimizer: nothing trains on from it; and `best/` with the best evaluated
    weights), `logs/train` and `logs/eval` (TensorBoard),
    `classifier_run.json` (settings), and at the end the fine-tuned model directory
    (`bert_config.json`, `vocab.txt`, `text_config.json`, `task_config.json` with
    labels, problem type, texts and length, `model.weights.h5`),
    `eval_results.json` and `predictions.tsv`. All input files are read and checked
    before anything is trained or written.
    """
    startup.begin()
    data = read_classifier_data(config)
    keras.utils.set_random_seed(config.seed)
    distribution = distribution or create_distribution(config.distribution_strategy,
                                                       config.tpu)
    manager = CheckpointManager(os.path.join(config.model_dir, "checkpoints"),
                                config.keep_checkpoint_max)
    results = {}
    if config.do_train:
        classifier, step = _train(config, data, distribution, manager)
    else:
        classifier, step = _trained_classifier(config, data, distribution), None
    if config.do_eval:
        results = _final_evaluation(config, data, classifier, manager, step,
                                    distribution.is_chief)
    if config.do_predict:
        _predict(config, data, classifier, distribution.is_chief)
    return results


def _compiles_per_shape(jit_compile, distribution):
    """Whether the train step is compiled again for each new batch shape: with XLA,
    and on a TPU (whose steps XLA always compiles)."""
    return bool(jit_compile) or distribution.name == "tpu"


def _train(config, data, distribution, manager):
    from keras_bert_app.model_dir import load_encoder
    from keras_bert_app.models import BertClassifier

    model_config, vocab_file, text_config, source_weights = runner.model_sources(config)
    model_config.validate_sequence_length(config.max_seq_length)
    data.set_text(vocab_file, text_config)
    plan = fine_tuning.schedule(config, len(data.train))
    resume_step = fine_tuning.resume_or_record(
        config, os.path.join(config.model_dir, names.CLASSIFIER_RUN_FILE),
        RESUME_SETTINGS, manager, plan.num_steps, data.settings(), distribution.is_chief)
    # Where a new length compiles nothing (no XLA, not a TPU), each batch pads to its
    # longest row instead of its length bucket: less compute, and the same packing
    # (one trace) as the evaluation's batches. Decided before the model is built, so
    # that the start-up line counts the dataset as data.
    compiles = _compiles_per_shape(
        resolve_jit_compile(config.jit_compile, distribution).jit_compile, distribution)
    dataset = data.train_dataset(config.train_batch_size, seed=config.seed,
                                 skip_batches=resume_step, pad_to_longest=not compiles)

    def classifier_encoder(encoder):
        # Fine-tuning a fine-tuned model further (RTE from MNLI): its encoder; the
        # head is new (its labels are another task's).
        encoder.set_weights(load_encoder(config.init_model_dir).get_weights())
        print(f"Started from the encoder of the classifier {config.init_model_dir}.")

    initialize = classifier_encoder if _is_classifier_dir(config.init_model_dir) \
        else fine_tuning.pretrained_weights(source_weights)
    classifier, step, compilation = fine_tuning.compiled_task_model(
        config, model_config, lambda encoder: BertClassifier(
            encoder, num_classes=data.task.num_outputs,
            multi_label=data.problem_type == names.MULTI_LABEL),
        num_steps=plan.num_steps, manager=manager, distribution=distribution,
        initialize=initialize)
    if _compiles_per_shape(classifier.jit_compile, distribution) != compiles:
        # Keras turned XLA off itself (op determinism on a GPU, a Mac's GPU): the
        # batches again, padded for the step as compiled.
        compiles = not compiles
        dataset = data.train_dataset(config.train_batch_size, seed=config.seed,
                                     skip_batches=resume_step, pad_to_longest=not compiles)
    if step < plan.num_steps and distribution.is_chief:
        print(f"Fine-tuning {distribution.describe()}: {len(data.train)} examples, "
              f"steps {step} → {plan.num_steps}, batch {config.train_batch_size}.")
    # The model directory, evaluation and predictions: float32 weights without XLA
    # (what the export serves); with do_eval, the best checkpoint's.
    classifier, weights_file = fine_tuning.train_and_keep_best(
        config, data, classifier, dataset, manager, distribution, plan, step, compilation)
    if distribution.is_chief:
        data.save_model_dir(config.model_dir, classifier, weights_file)
    return classifier, plan.num_steps


def _final_evaluation(config, data, classifier, manager, step, chief=True):
    results, extra = fine_tuning.final_results(config, data, classifier, manager, step,
                                               chief)
    results.update(extra, eval_examples=sum(len(e) for _, e in data.eval_sets))
    if chief:
        write_json(os.path.join(config.model_dir, names.EVAL_RESULTS_FILE), results)
    return results


def _predict(config, data, classifier, chief=True):
    outputs, _ = data.predict(classifier, data.predict_set, config.predict_batch_size)
    if not chief:
        return
    path = os.path.join(config.model_dir, names.PREDICTIONS_FILE)
    data.write_predictions(path, outputs)
    print(f"Wrote {len(data.predict_set)} predictions to {path}")


def _is_classifier_dir(directory):
    from keras_bert_app.model_dir import read_task_config

    if not directory:
        return False
    task = read_task_config(directory)
    return task is not None and task.task == names.CLASSIFICATION_TASK


def _trained_classifier(config, data, distribution):
    """Evaluation / prediction alone: the fine-tuned directory `model_dir` (a
    finished run) or `init_model_dir`."""
    from keras_bert_app.model_dir import load_classifier, read_task_config

    for directory in (config.model_dir, config.init_model_dir):
        if directory and os.path.isfile(os.path.join(directory, names.WEIGHTS_FILE)):
            task = read_task_config(directory)
            if task is not None and task.task == names.CLASSIFICATION_TASK:
                with distribution.scope():
                    classifier = load_classifier(directory, with_preprocessor=False)
                data.use_model_dir(directory, task)
                return classifier
    raise ValueError(f"do_train=false, and neither model_dir={config.model_dir} nor "
                     f"init_model_dir={config.init_model_dir} is a fine-tuned "
                     "classifier directory: there is no model to evaluate or predict with.")


__all__ = ["ClassifierRunConfig", "run_classifier", "ClassifierData"]
