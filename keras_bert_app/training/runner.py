"""The training runner every training binary shares: model sources, the step-counted
`fit` with checkpoints, TensorBoard scalars and resume, and the run-settings file.

`run_pretraining` and the fine-tuning runners (`run_classifier`, …) differ in their
data and model; how they start from weights, checkpoint, log, stop at an exact step
and resume after a kill is this module's, once.
"""

import dataclasses
import json
import math
import os

from keras_bert_app import names
from keras_bert_app.config import BertConfig
from keras_bert_app.files import model_dir_files
from keras_bert_app.training import callbacks as run_callbacks
from keras_bert_app.training.checkpointing import write_json

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# Google's create_pretraining_data random_seed; every run's default, so that the
# workers of a multi-worker run and a resumed run share it.
DEFAULT_SEED = 12345


def default_log_steps(save_checkpoints_steps, steps_per_execution):
    """Steps per logging interval (one Keras "epoch") when none is given."""
    return math.gcd(save_checkpoints_steps, 100 * steps_per_execution)


def fit_steps(model, dataset, manager, *, start_step, num_train_steps, log_steps,
              save_checkpoints_steps, global_batch_size, model_dir, distribution,
              verbose="auto", callbacks=(), errors_named=None, compilation=None,
              optimizer_state_at_end=True):
    """Trains `model` (compiled, restored to `start_step`) from `start_step` to
    exactly `num_train_steps` batches of `dataset`.

    Each Keras epoch is one logging interval of `log_steps` batches, so the epoch
    number times `log_steps` is the global step and survives a restart. Checkpoints
    every `save_checkpoints_steps` and at the end (chief only), TensorBoard scalars of
    every interval in `model_dir/logs/train` (loss, metrics, learning rate,
    `examples_per_second`). `callbacks` (e.g. evaluation at each checkpoint) run at
    the end of an interval before its checkpoint is saved. `errors_named` wraps `fit` (a context manager that turns input errors
    into messages naming the file). `compilation` (a `compilation.RunCompilation`):
    the start-up line at the first step, Grappler as it decided while `fit` runs
    (`RunCompilation.training`), and the compile count after the last step.
    `optimizer_state_at_end=False`: the last step's checkpoint leaves the optimizer's
    state out, for a run that is never trained further (fine-tuning: its resume
    settings include the step count; `checkpointing`).
    """
    import contextlib

    if start_step % log_steps and start_step < num_train_steps:
        raise ValueError(f"The newest checkpoint is at step {start_step}, not a multiple "
                         f"of log_steps={log_steps}: resume with the original settings.")
    if start_step >= num_train_steps:
        return start_step
    # Order at an interval's end: TensorBoard first (its examples_per_second times the
    # training steps alone), then the task's callbacks (evaluation, best weights),
    # then the checkpoint — a kill during an evaluation resumes from the checkpoint
    # before it and evaluates again, instead of skipping an evaluated step.
    from keras_bert_app.training.keras_workarounds import build_before_fit
    from keras_bert_app.training.startup import FirstStepLog

    run = [run_callbacks.StepLimit(num_train_steps, log_steps)]
    if compilation is not None:
        run.append(FirstStepLog(compilation.first_step_detail(),
                                enabled=distribution.is_chief))
    if distribution.is_chief:
        run.append(run_callbacks.TensorBoardScalars(
            os.path.join(model_dir, names.TRAIN_LOGS_DIR), global_batch_size, log_steps,
            num_train_steps))
    run += list(callbacks) + [
        run_callbacks.PeriodicCheckpoint(manager, save_checkpoints_steps,
                                         num_train_steps, log_steps,
                                         enabled=distribution.is_chief,
                                         optimizer_state_at_end=optimizer_state_at_end)]
    build_before_fit(model, dataset)  # one trace of the train step, not two
    training = compilation.training() if compilation is not None \
        else contextlib.nullcontext()
    with training, errors_named or contextlib.nullcontext():
        model.fit(dataset, epochs=math.ceil(num_train_steps / log_steps),
                  initial_epoch=start_step // log_steps, steps_per_epoch=log_steps,
                  callbacks=run, shuffle=False,
                  verbose=verbose if distribution.is_chief else 0)
    if compilation is not None and distribution.is_chief:
        print(compilation.summary())
    return num_train_steps


def write_scalars(log_dir, step, scalars):
    """TensorBoard scalars at `step` in `log_dir` (e.g. `model_dir/logs/eval`)."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default(step=step):
        for name, value in scalars.items():
            tf.summary.scalar(name, value)
    writer.close()


def write_tensors(log_dir, step, tensors):
    """TensorBoard tensor summaries at `step` in `log_dir`: `{tag: array}` written as
    they are (dtype and shape kept, e.g. an int64 [k, k] confusion matrix), for readers
    such as `keras_bert_app.plots.read_tensor`; TensorBoard lists them without a plot."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default(step=step):
        for name, value in tensors.items():
            tf.summary.write(name, tf.convert_to_tensor(value))
    writer.close()


def write_run_config(path, config, **extra):
    """Every setting of a run, as JSON, at its start (a resumed run checks them)."""
    values = {k: v for k, v in dataclasses.asdict(config).items() if k != "bert_config"}
    values.update(extra)
    write_json(path, values)


def check_resume_settings(path, config, keys, data=None):
    """A resumed run must share `keys` (the settings deciding which examples a
    checkpointed step stands for, and how its optimizer state was made) with the run
    that wrote `path`, and the settings derived from its data (`data`, recorded under
    "data": e.g. label names)."""
    if not os.path.isfile(path):
        return  # checkpoints of an older version: nothing recorded to compare
    with open(path) as f:
        recorded = json.load(f)
    current = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    changed = {k: (recorded.get(k), current[k]) for k in keys
               if k in recorded and recorded[k] != current[k]}
    if data is not None:
        data = json.loads(json.dumps(data, default=str))
        old = recorded.get("data", {})
        changed.update({f"data.{k}": (old.get(k), v) for k, v in data.items()
                        if k in old and old[k] != v})
    if changed:
        raise ValueError(
            f"{os.path.dirname(path)} holds checkpoints of a run with other settings "
            + ", ".join(f"{k}={old!r} (now {new!r})" for k, (old, new) in changed.items())
            + ": resume with the original settings or use a new model_dir.")


def model_sources(config):
    """`(BertConfig, vocab file, TextConfig, load)` of a run's starting model:
    `init_model_dir` whole, or `bert_config` + `vocab_file` + `do_lower_case`
    (optionally with `init_checkpoint`). `load(pretrainer)` assigns the starting
    weights to a `BertPretrainer` and prints the import report; it is None when the
    model starts from random weights."""
    from keras_bert_app.checkpoints import (check_init_checkpoint, load_init_checkpoint,
                                            load_init_model_dir)
    from keras_bert_app.text.text_config import TextConfig

    if config.init_model_dir is not None:
        if config.init_checkpoint is not None:
            raise ValueError("Give init_model_dir or init_checkpoint, not both.")
        config_file, vocab_file, text_file = model_dir_files(
            config.init_model_dir, names.BERT_CONFIG_FILE, names.VOCAB_FILE,
            names.TEXT_CONFIG_FILE)
        text_config = TextConfig.from_json_file(text_file)
        text_config.check_vocab(vocab_file)
        if config.do_lower_case is not None and config.do_lower_case != \
                text_config.do_lower_case:
            raise ValueError(f"do_lower_case={config.do_lower_case} contradicts "
                             f"{text_file} (do_lower_case={text_config.do_lower_case}).")
        model_config = BertConfig.from_json_file(config_file)
        if config.bert_config is not None and config.bert_config != model_config:
            raise ValueError(f"bert_config differs from {config_file}; the model of "
                             "init_model_dir is continued as it is.")
        return model_config, vocab_file, text_config, lambda pretrainer: print(
            load_init_model_dir(pretrainer, config.init_model_dir).format())
    if config.bert_config is None or config.vocab_file is None:
        raise ValueError("Give init_model_dir, or bert_config and vocab_file.")
    if config.do_lower_case is None:
        raise ValueError("do_lower_case must be given with vocab_file.")
    if not os.path.isfile(config.vocab_file):
        raise FileNotFoundError(f"vocab_file {config.vocab_file} does not exist.")
    text_config = TextConfig.for_vocab(config.vocab_file, config.do_lower_case)
    source = None
    if config.init_checkpoint is not None:
        # Vocabulary, casing and architecture against the checkpoint's own files, before
        # anything is built; the load itself refuses a source lacking encoder weights.
        for note in check_init_checkpoint(config.init_checkpoint, config.vocab_file,
                                          config.do_lower_case, config.bert_config):
            print(f"init_checkpoint: {note}")
        source = lambda pretrainer: print(load_init_checkpoint(
            pretrainer, config.init_checkpoint, config.vocab_file,
            config.do_lower_case).format())
    return config.bert_config, config.vocab_file, text_config, source


def check_execution(config):
    """The settings every training run config has (`mixed_precision`,
    `distribution_strategy`, `optimizer`, `jit_compile`, `graph_optimization`,
    `seed`), checked once."""
    from keras_bert_app.training.distribution import STRATEGIES
    from keras_bert_app.training.optimizers import OPTIMIZERS

    one_of("mixed_precision", config.mixed_precision, PRECISIONS)
    one_of("distribution_strategy", config.distribution_strategy, STRATEGIES)
    one_of("optimizer", config.optimizer, OPTIMIZERS)
    if config.jit_compile not in ("auto", True, False):
        raise ValueError(f"jit_compile={config.jit_compile!r}; expected 'auto', True "
                         "or False.")
    if config.graph_optimization not in ("auto", True, False):
        raise ValueError(f"graph_optimization={config.graph_optimization!r}; expected "
                         "'auto', True or False.")
    if config.seed is None:
        raise ValueError("seed=None: a run needs a seed shared by its workers and by a "
                         "resumed run (the default is fixed).")


def one_of(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name}={value!r}; expected one of {list(allowed)}.")
