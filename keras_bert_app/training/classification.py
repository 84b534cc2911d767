"""`run_classifier`: fine-tunes a `BertClassifier` on sentence or sentence-pair data,
evaluates it as papers report, keeps the best checkpoint and ends in a fine-tuned model
directory; resumable after a kill like pre-training (the same runner)."""

import dataclasses
import math
import os

import keras

from keras_bert_app import names
from keras_bert_app.training import runner
from keras_bert_app.training.classifier_inputs import ClassifierData, read_classifier_data
from keras_bert_app.training.checkpointing import CheckpointManager, write_json
from keras_bert_app.training.distribution import create_distribution
from keras_bert_app.training.keras_workarounds import prepare_for_distribution
from keras_bert_app.training.optimizers import create_optimizer
from keras_bert_app.training.run_config import FineTuningSettings, positive
from keras_bert_app.training.runner import one_of

# checkpoints/best/: the best evaluated weights and their record.
BEST_DIR = "best"
BEST_RECORD = "best.json"
# What a resumed run must share with the run it continues.
RESUME_SETTINGS = ("task_name", "data_dir", "train_file", "eval_file", "seed",
                   "train_batch_size", "max_seq_length", "num_train_epochs",
                   "num_train_steps", "dynamic_padding", "label_names", "problem_type",
                   "text_a_column", "text_b_column", "label_column", "label_separator",
                   "metric", "save_checkpoints_steps", "log_steps",
                   "steps_per_execution")


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

    Under `config.model_dir`: `checkpoints/` (model + optimizer, and `best/` with the
    best evaluated weights), `logs/train` and `logs/eval` (TensorBoard),
    `classifier_run.json` (settings), and at the end the fine-tuned model directory
    (`bert_config.json`, `vocab.txt`, `text_config.json`, `task_config.json` with
    labels, problem type, texts and length, `model.weights.h5`),
    `eval_results.json` and `predictions.tsv`. All input files are read and checked
    before anything is trained or written.
    """
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


def _intervals(config, num_examples):
    """`(save_checkpoints_steps, log_steps)`. By default a checkpoint (and evaluation)
    about once an epoch, rounded up to whole logging intervals of at most 100 steps
    (each a Keras "epoch": fewer host round trips than a short one)."""
    per_execution = config.steps_per_execution
    if config.save_checkpoints_steps:
        save_steps = config.save_checkpoints_steps
        log_steps = config.log_steps or runner.default_log_steps(save_steps, per_execution)
    else:
        steps_per_epoch = max(1, math.ceil(num_examples / config.train_batch_size))
        log_steps = config.log_steps or max(
            per_execution, min(100, steps_per_epoch) // per_execution * per_execution)
        save_steps = math.ceil(steps_per_epoch / log_steps) * log_steps
    if save_steps % log_steps or log_steps % per_execution:
        raise ValueError(f"save_checkpoints_steps={save_steps} must be a multiple of "
                         f"log_steps={log_steps}, itself a multiple of "
                         f"steps_per_execution={per_execution}.")
    return save_steps, log_steps


def _train(config, data, distribution, manager):
    from keras_bert_app.model_dir import load_encoder
    from keras_bert_app.models import BertClassifier, BertEncoder, BertPretrainer

    model_config, vocab_file, text_config, source_weights = runner.model_sources(config)
    model_config.validate_sequence_length(config.max_seq_length)
    data.set_text(vocab_file, text_config)
    num_steps = config.num_train_steps or max(1, int(
        len(data.train) * config.num_train_epochs / config.train_batch_size))
    save_steps, log_steps = _intervals(config, len(data.train))
    run_file = os.path.join(config.model_dir, names.CLASSIFIER_RUN_FILE)
    resume_step = manager.latest_step() or 0
    if resume_step:
        # Compared as recorded: with the step count that the epochs came to.
        runner.check_resume_settings(run_file, dataclasses.replace(
            config, num_train_steps=num_steps), RESUME_SETTINGS, data=data.settings())
        print(f"Resuming at step {resume_step} of {num_steps}.")
    dataset = data.train_dataset(config.train_batch_size, seed=config.seed,
                                 skip_batches=resume_step)
    if distribution.is_chief:
        runner.write_run_config(run_file, config, data=data.settings(),
                                num_train_steps=num_steps)
    with distribution.scope():
        encoder = BertEncoder(model_config, dtype=config.mixed_precision)
        classifier = BertClassifier(encoder, num_classes=data.task.num_outputs,
                                    multi_label=data.problem_type == names.MULTI_LABEL)
        optimizer = create_optimizer(config.learning_rate, num_steps,
                                     int(num_steps * config.warmup_proportion),
                                     optimizer=config.optimizer,
                                     weight_decay=config.weight_decay)
        classifier.compile(optimizer=optimizer, jit_compile=config.jit_compile,
                           steps_per_execution=config.steps_per_execution)
        classifier.optimizer.build(classifier.trainable_variables)
        prepare_for_distribution(classifier, distribution)
        step = manager.restore(classifier)
        if step == 0 and _is_classifier_dir(config.init_model_dir):
            # Fine-tuning a fine-tuned model further (RTE from MNLI): its encoder;
            # the head is new (its labels are another task's).
            encoder.set_weights(load_encoder(config.init_model_dir).get_weights())
            print(f"Started from the encoder of the classifier {config.init_model_dir}.")
        elif step == 0 and source_weights is not None:
            # The import path checks every encoder weight; the pre-training heads it
            # also fills are dropped with this wrapper.
            source_weights(BertPretrainer(encoder))
    if step < num_steps and distribution.is_chief:
        print(f"Fine-tuning {distribution.describe()}: {len(data.train)} examples, "
              f"steps {step} → {num_steps}, batch {config.train_batch_size}.")
    callbacks = []
    if config.do_eval:
        callbacks.append(_BestCheckpoint(config, data, manager, save_steps, num_steps,
                                         log_steps, distribution.is_chief))
    runner.fit_steps(classifier, dataset, manager, start_step=step,
                     num_train_steps=num_steps, log_steps=log_steps,
                     save_checkpoints_steps=save_steps,
                     global_batch_size=config.train_batch_size,
                     model_dir=config.model_dir, distribution=distribution,
                     verbose=config.verbose, callbacks=callbacks)
    best = _best_record(manager)
    if config.do_eval and best is not None:
        # The model directory (and the final evaluation) is the best checkpoint's.
        classifier = data.classifier_copy(classifier)
        classifier.load_weights(_best_weights(manager, best))
    if distribution.is_chief:
        data.save_model_dir(config.model_dir, classifier)
    return classifier, num_steps


class _BestCheckpoint(keras.callbacks.Callback):
    """Evaluates at each checkpoint; keeps the best weights on `metric` in
    `checkpoints/best/` with their results (`best.json`), across restarts."""

    def __init__(self, config, data, manager, save_steps, num_steps, log_steps, chief):
        super().__init__()
        self.config, self.data, self.manager = config, data, manager
        self.save_steps, self.num_steps, self.log_steps = save_steps, num_steps, log_steps
        self.chief = chief

    def on_epoch_end(self, epoch, logs=None):
        step = min((epoch + 1) * self.log_steps, self.num_steps)
        if step % self.save_steps and step < self.num_steps:
            return
        results = _evaluate(self.config, self.data, self.model, step, self.chief)
        if not self.chief:
            return
        metric = self.data.metric
        best = _best_record(self.manager)
        if best is None or self.data.better(results[metric], best["results"][metric]):
            # New weights under a new name, then the record naming them (atomic),
            # then the old file: a kill at any point leaves a record and its weights.
            directory = os.path.join(self.manager.directory, BEST_DIR)
            os.makedirs(directory, exist_ok=True)
            name = f"best-{step}.weights.h5"
            partial = os.path.join(directory, ".partial-" + name)
            self.data.classifier_copy(self.model).save_weights(partial)
            os.replace(partial, os.path.join(directory, name))
            write_json(os.path.join(directory, BEST_RECORD),
                       {"step": step, "metric": metric, "results": results,
                        "weights": name})
            if best is not None and best["weights"] != name:
                old = os.path.join(directory, best["weights"])
                if os.path.isfile(old):
                    os.remove(old)
            print(f"New best {metric} {results[metric]:.4f} at step {step}.")


def _best_record(manager):
    import json

    path = os.path.join(manager.directory, BEST_DIR, BEST_RECORD)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _best_weights(manager, best):
    return os.path.join(manager.directory, BEST_DIR, best["weights"])


def _evaluate(config, data, classifier, step, chief=True):
    """Metrics of every evaluation split; the first split's keys are plain, others
    are prefixed with the split (`dev_mismatched/accuracy`). Every worker computes
    them (predict is collective); the chief writes them, and for single-label
    problems the split's confusion matrix (int64 [k, k], rows true, columns
    predicted) as a tensor summary under the same prefix."""
    from keras_bert_app.data.classification_data import label_ids
    from keras_bert_app.training import classification_metrics as cm

    results = {}
    log_dir = os.path.join(config.model_dir, names.EVAL_LOGS_DIR)
    for index, (split, examples) in enumerate(data.eval_sets):
        outputs, loss = data.predict(classifier, examples, config.eval_batch_size)
        scores = data.metrics(examples, outputs)
        scores["loss"] = loss
        prefix = "" if index == 0 else f"{split}/"
        results.update({prefix + k: v for k, v in scores.items()})
        if chief:
            runner.write_scalars(log_dir, step, {prefix + k: v for k, v in scores.items()})
            if data.problem_type == names.SINGLE_LABEL:
                confusion = cm.confusion_matrix(label_ids(examples, data.label_names),
                                                outputs)
                runner.write_tensors(log_dir, step,
                                     {prefix + names.CONFUSION_MATRIX_TAG: confusion})
    if chief:
        print(f"Evaluation at step {step}: " +
              ", ".join(f"{k} {v:.4f}" for k, v in sorted(results.items())))
    return results


def _final_evaluation(config, data, classifier, manager, step, chief=True):
    best = _best_record(manager) if config.do_train else None
    if best is not None:
        results = dict(best["results"])
        results.update(global_step=step, best_step=best["step"], metric=best["metric"])
    else:
        results = _evaluate(config, data, classifier, step or 0, chief)
        if step is not None:
            results["global_step"] = step
    results["eval_examples"] = sum(len(e) for _, e in data.eval_sets)
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
