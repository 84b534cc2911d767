"""`run_multiple_choice`: fine-tunes a `BertMultipleChoice` (SWAG, or any number of
choices per question), evaluates accuracy at every checkpoint, keeps the best, writes
predictions and ends in a fine-tuned model directory; resumable after a kill (the
runner and the best-checkpoint machinery `run_classifier` uses)."""

import dataclasses
import os

import keras

from keras_bert_app import names
from keras_bert_app.training import fine_tuning, runner, startup
from keras_bert_app.training.checkpointing import CheckpointManager, write_json
from keras_bert_app.training.distribution import create_distribution
from keras_bert_app.training.multiple_choice_inputs import (choice_model_of,
                                                            read_multiple_choice_data,
                                                            training_model)
from keras_bert_app.training.run_config import FileTaskSettings

# The settings every run writes into its model_dir (checked by a resume).
RUN_FILE = names.MULTIPLE_CHOICE_RUN_FILE
# What a resumed run must share with the run it continues.
RESUME_SETTINGS = ("train_file", "eval_file", "seed", "train_batch_size",
                   "max_seq_length", "num_train_epochs", "num_train_steps",
                   "save_checkpoints_steps", "log_steps", "steps_per_execution",
                   "learning_rate", "warmup_proportion", "optimizer", "weight_decay",
                   "skip_bad_records")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MultipleChoiceRunConfig(FileTaskSettings):
    """Everything a multiple-choice run needs; `pipelines.run_multiple_choice`'s
    flags; model source, execution and schedule as every fine-tuning run
    (`FineTuningSettings`; an example is a question with all its choices, so a batch
    of 32 runs 32 × choices sequences).

    Files: SWAG's CSV layout or JSON lines (`read_multiple_choice`). With `do_eval`
    the model is evaluated at every checkpoint (every `save_checkpoints_steps`, by
    default once an epoch) and the most accurate is what the model directory ends
    with.
    """

    def __post_init__(self):
        super().__post_init__()
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
    startup.begin()
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
    from keras_bert_app.models import BertMultipleChoice

    model_config, vocab_file, text_config, source_weights = runner.model_sources(config)
    model_config.validate_sequence_length(config.max_seq_length)
    data.set_text(vocab_file, text_config, config.max_seq_length)
    plan = fine_tuning.schedule(config, len(data.train))
    resume_step = fine_tuning.resume_or_record(
        config, os.path.join(config.model_dir, RUN_FILE), RESUME_SETTINGS, manager,
        plan.num_steps, data.settings(), distribution.is_chief)
    dataset = data.train_dataset(config.train_batch_size, seed=config.seed,
                                 skip_batches=resume_step)
    model, step, compilation = fine_tuning.compiled_task_model(
        config, model_config, lambda encoder: training_model(BertMultipleChoice(encoder)),
        num_steps=plan.num_steps, manager=manager,
        distribution=distribution, initialize=fine_tuning.pretrained_weights(source_weights),
        compile_args=lambda model: {"loss": choice_model_of(model).default_loss(),
                                    "metrics": choice_model_of(model).default_metrics()})
    if step < plan.num_steps and distribution.is_chief:
        print(f"Fine-tuning for multiple choice {distribution.describe()}: "
              f"{len(data.train)} questions, steps {step} → {plan.num_steps}, batch "
              f"{config.train_batch_size}.")
    # Float32, without the optimizer: what the directory holds and the export serves,
    # so predictions.tsv is what a server answers. With do_eval: the best weights.
    model, weights_file = fine_tuning.train_and_keep_best(
        config, data, model, dataset, manager, distribution, plan, step, compilation)
    if distribution.is_chief:
        data.save_model_dir(config.model_dir, model, weights_file)
    return model, plan.num_steps


def _final_evaluation(config, data, model, manager, step, chief=True):
    results, extra = fine_tuning.final_results(config, data, model, manager, step, chief)
    results.update(extra, eval_examples=sum(len(e) for _, e in data.eval_sets))
    if chief:
        write_json(os.path.join(config.model_dir, names.EVAL_RESULTS_FILE), results)
    return results


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
