"""`run_multiple_choice`: fine-tunes a `BertMultipleChoice` (SWAG, or any number of
choices per question), evaluates accuracy at every checkpoint, keeps the best, writes
predictions and ends in a fine-tuned model directory; resumable after a kill (the
runner and the best-checkpoint machinery `run_classifier` uses)."""

import dataclasses
import os

import keras

from keras_bert_app import names
from keras_bert_app.training import runner
from keras_bert_app.training.checkpointing import CheckpointManager
from keras_bert_app.training.classification import (_best_record, _best_weights,
                                                    _BestCheckpoint, _final_evaluation,
                                                    _intervals)
from keras_bert_app.training.distribution import create_distribution
from keras_bert_app.training.keras_workarounds import prepare_for_distribution
from keras_bert_app.training.multiple_choice_inputs import (read_multiple_choice_data,
                                                            training_model)
from keras_bert_app.training.optimizers import create_optimizer
from keras_bert_app.training.run_config import FineTuningSettings, positive

# The settings every run writes into its model_dir (checked by a resume).
RUN_FILE = names.MULTIPLE_CHOICE_RUN_FILE
# What a resumed run must share with the run it continues.
RESUME_SETTINGS = ("train_file", "eval_file", "seed", "train_batch_size",
                   "max_seq_length", "num_train_epochs", "num_train_steps",
                   "save_checkpoints_steps", "log_steps", "steps_per_execution",
                   "learning_rate", "warmup_proportion", "optimizer", "weight_decay")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MultipleChoiceRunConfig(FineTuningSettings):
    """Everything a multiple-choice run needs; `pipelines.run_multiple_choice`'s
    flags; model source, execution and schedule as every fine-tuning run
    (`FineTuningSettings`; an example is a question with all its choices, so a batch
    of 32 runs 32 × choices sequences).

    Files: SWAG's CSV layout or JSON lines (`read_multiple_choice`). With `do_eval`
    the model is evaluated at every checkpoint (every `save_checkpoints_steps`, by
    default once an epoch) and the most accurate is what the model directory ends
    with.
    """

    train_file: str = None
    eval_file: str = None
    predict_file: str = None
    do_eval: bool = False
    do_predict: bool = False
    eval_batch_size: int = 8
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
        if self.max_seq_length < 5:
            raise ValueError(f"max_seq_length={self.max_seq_length} must be at least 5 "
                             "([CLS] context [SEP] choice [SEP]).")


def run_multiple_choice(config, distribution=None):
    """Fine-tunes, evaluates and/or predicts as `config` says; returns the
    evaluation results (`accuracy`, `loss`, …) or {}.

    Under `config.model_dir`: `checkpoints/` (and `best/` with `do_eval`),
    `logs/train` and `logs/eval` (TensorBoard), `multiple_choice_run.json`, the
    fine-tuned model directory (`task_config.json`: task `multiple_choice`, its
    sequence length), `eval_results.json` and `predictions.tsv`. Every input file is
    read and checked before anything is trained or written.
    """
    data = read_multiple_choice_data(config)
    keras.utils.set_random_seed(config.seed)
    distribution = distribution or create_distribution(config.distribution_strategy,
                                                       config.tpu)
    manager = CheckpointManager(os.path.join(config.model_dir, "checkpoints"),
                                config.keep_checkpoint_max)
    if config.do_train:
        model, step = _train(config, data, distribution, manager)
    else:
        model, step = _trained(config, data, distribution), None
    results = {}
    if config.do_eval:
        results = _final_evaluation(config, data, model, manager, step,
                                    distribution.is_chief)
    if config.do_predict:
        outputs, _ = data.predict(model, data.predict_set, config.predict_batch_size)
        if distribution.is_chief:
            path = os.path.join(config.model_dir, names.PREDICTIONS_FILE)
            data.write_predictions(path, outputs)
            print(f"Wrote {len(data.predict_set)} predictions to {path}")
    return results


def _train(config, data, distribution, manager):
    from keras_bert_app.models import BertEncoder, BertMultipleChoice, BertPretrainer

    model_config, vocab_file, text_config, source_weights = runner.model_sources(config)
    model_config.validate_sequence_length(config.max_seq_length)
    data.set_text(vocab_file, text_config, config.max_seq_length)
    num_steps = config.num_train_steps or max(1, int(
        len(data.train) * config.num_train_epochs / config.train_batch_size))
    save_steps, log_steps = _intervals(config, len(data.train))
    run_file = os.path.join(config.model_dir, RUN_FILE)
    resume_step = manager.latest_step() or 0
    if resume_step:
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
        choice_model = BertMultipleChoice(encoder)
        model = training_model(choice_model)
        model.compile(
            optimizer=create_optimizer(config.learning_rate, num_steps,
                                       int(num_steps * config.warmup_proportion),
                                       optimizer=config.optimizer,
                                       weight_decay=config.weight_decay),
            loss=choice_model.default_loss(), metrics=choice_model.default_metrics(),
            jit_compile=config.jit_compile, steps_per_execution=config.steps_per_execution)
        model.optimizer.build(model.trainable_variables)
        prepare_for_distribution(model, distribution)
        step = manager.restore(model)
        if step == 0 and source_weights is not None:
            source_weights(BertPretrainer(encoder))
    if step < num_steps and distribution.is_chief:
        print(f"Fine-tuning for multiple choice {distribution.describe()}: "
              f"{len(data.train)} questions, steps {step} → {num_steps}, batch "
              f"{config.train_batch_size}.")
    callbacks = []
    if config.do_eval:
        callbacks.append(_BestCheckpoint(config, data, manager, save_steps, num_steps,
                                         log_steps, distribution.is_chief))
    runner.fit_steps(model, dataset, manager, start_step=step, num_train_steps=num_steps,
                     log_steps=log_steps, save_checkpoints_steps=save_steps,
                     global_batch_size=config.train_batch_size,
                     model_dir=config.model_dir, distribution=distribution,
                     verbose=config.verbose, callbacks=callbacks)
    # Float32, without the optimizer: what the directory holds and the export serves,
    # so predictions.tsv is what a server answers. With do_eval: the best weights.
    model = data.classifier_copy(model)
    best = _best_record(manager)
    if config.do_eval and best is not None:
        model.load_weights(_best_weights(manager, best))
    if distribution.is_chief:
        data.save_model_dir(config.model_dir, model)
    return model, num_steps


def _trained(config, data, distribution):
    """Evaluation / prediction alone: the fine-tuned directory `model_dir` (a
    finished run) or `init_model_dir`, at the sequence length it was trained with."""
    from keras_bert_app.model_dir import load_task_model, read_task_config
    from keras_bert_app.text.text_config import TextConfig

    for directory in (config.model_dir, config.init_model_dir):
        task = read_task_config(directory) if directory else None
        if task is None or task.task != names.MULTIPLE_CHOICE_TASK:
            continue
        with distribution.scope():
            model, task = load_task_model(directory, names.MULTIPLE_CHOICE_TASK)
        if task.max_seq_length != config.max_seq_length:
            print(f"{directory} was trained with max_seq_length={task.max_seq_length}: "
                  f"used instead of {config.max_seq_length}.")
        data.set_text(os.path.join(directory, names.VOCAB_FILE),
                      TextConfig.from_json_file(os.path.join(directory,
                                                             names.TEXT_CONFIG_FILE)),
                      task.max_seq_length)
        return model
    raise ValueError(f"do_train=false, and neither model_dir={config.model_dir} nor "
                     f"init_model_dir={config.init_model_dir} is a fine-tuned "
                     "multiple-choice directory: there is no model to evaluate or "
                     "predict with.")
