"""`run_pretraining`: masked-LM + NSP/SOP pre-training with `model.fit` under a
distribution, resumable after a kill, ending in a pre-trained model directory."""

import contextlib
import dataclasses
import os

import keras

from keras_bert_app import names
from keras_bert_app.layers.initializers import weights_set_after
from keras_bert_app.model_dir import save_model_dir
from keras_bert_app.models import BertEncoder, BertPretrainer
from keras_bert_app.training import pretraining_inputs as inputs
from keras_bert_app.training import runner
from keras_bert_app.training.runner import one_of
from keras_bert_app.training.checkpointing import CheckpointManager, write_json
from keras_bert_app.training.compilation import RunCompilation, cpu_xla_pays, grappler_pays
from keras_bert_app.training.distribution import create_distribution
from keras_bert_app.training.keras_workarounds import (evaluate_to_the_end,
                                                       prepare_for_distribution)
from keras_bert_app.training.optimizers import create_optimizer
from keras_bert_app.training.run_config import RunSettings
from keras_bert_app.training import startup

INPUT_FORMATS = ("auto", "tfrecord", "text")
RUN_CONFIG_FILE = names.PRETRAINING_RUN_FILE
EVAL_RESULTS_FILE = names.EVAL_RESULTS_FILE
# Settings a resumed run must share with the run it continues: they decide which
# batches the checkpointed step stands for, and what its optimizer state is (AdamW's
# and LAMB's variables look alike to Keras).
RESUME_SETTINGS = ("input_file", "seed", "train_batch_size", "input_format", "optimizer",
                   "gradient_accumulation_steps", "sentence_prediction",
                   "do_whole_word_mask", "masked_lm_prob", "short_seq_prob",
                   "max_seq_length", "max_predictions_per_seq", "skip_corrupt_records")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PretrainingRunConfig(RunSettings):
    """Everything a pre-training run needs; `pipelines.run_pretraining`'s flags (model
    source and execution settings as every run: `RunSettings`).

    The model comes from `init_model_dir` (config, vocabulary and casing; its
    weights are the starting point) or from `bert_config` + `vocab_file` +
    `do_lower_case` (optionally starting from the Google TF1 checkpoint or Hugging
    Face directory `init_checkpoint`). Input, decided from the files' content, is
    `create_pretraining_data`'s TFRecords (their metadata decides the sequence
    length, masking and sentence task, and is checked against the model), TFRecords
    of Google's script (no metadata: `max_seq_length` and `max_predictions_per_seq`
    are required and checked against the records), or raw text, masked
    dynamically.

    Steps count batches of `train_batch_size` (the global batch, over all
    replicas). With `gradient_accumulation_steps=k` the optimizer updates every k
    batches; the learning-rate schedule still counts batches (Keras evaluates it at
    its batch counter).
    """

    input_file: str
    model_dir: str
    input_format: str = "auto"  # decided from the files' content; or tfrecord/text
    # Raw text: default 128 and 20. Records with metadata carry their own (given
    # values must agree); records without it (Google's) need both.
    max_seq_length: int = None
    max_predictions_per_seq: int = None
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    sentence_prediction: str = "nsp"
    do_whole_word_mask: bool = False
    # Optimisation.
    train_batch_size: int = 32
    num_train_steps: int = 100_000
    num_warmup_steps: int = 10_000
    learning_rate: float = 1e-4
    gradient_accumulation_steps: int = 1
    save_checkpoints_steps: int = 1000
    skip_corrupt_records: bool = False
    # Evaluation (Google's run_pretraining --do_eval): held-out masked-LM and NSP
    # accuracy/loss on eval_input_file (default input_file), to eval_results.json and
    # logs/eval.
    do_train: bool = True
    do_eval: bool = False
    eval_input_file: str = None
    eval_batch_size: int = 8
    max_eval_steps: int = 100

    def __post_init__(self):
        super().__post_init__()
        one_of("input_format", self.input_format, INPUT_FORMATS)
        one_of("sentence_prediction", self.sentence_prediction,
                names.SENTENCE_PREDICTION_MODES)
        if not (self.do_train or self.do_eval):
            raise ValueError("Nothing to do: do_train and do_eval are both false.")
        for field in ("train_batch_size", "num_train_steps", "steps_per_execution",
                      "save_checkpoints_steps", "gradient_accumulation_steps",
                      "keep_checkpoint_max", "eval_batch_size", "max_eval_steps"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field}={getattr(self, field)} must be positive.")
        if not 0 <= self.num_warmup_steps <= self.num_train_steps:
            raise ValueError(f"num_warmup_steps={self.num_warmup_steps} must be in "
                             f"[0, num_train_steps={self.num_train_steps}].")
        if self.save_checkpoints_steps % self.effective_log_steps:
            raise ValueError(f"save_checkpoints_steps={self.save_checkpoints_steps} must be "
                             f"a multiple of log_steps={self.effective_log_steps}.")
        if self.num_train_steps % self.gradient_accumulation_steps:
            raise ValueError(f"num_train_steps={self.num_train_steps} must be a multiple "
                             "of gradient_accumulation_steps="
                             f"{self.gradient_accumulation_steps}: the last batches would "
                             "accumulate gradients that no update uses.")
        if self.save_checkpoints_steps % self.gradient_accumulation_steps:
            # A checkpoint must fall between updates: mid-cycle, each replica's partial
            # gradient sums would be lost (only one replica's are saved).
            raise ValueError(f"save_checkpoints_steps={self.save_checkpoints_steps} must "
                             "be a multiple of gradient_accumulation_steps="
                             f"{self.gradient_accumulation_steps}.")
        if self.effective_log_steps % self.steps_per_execution:
            raise ValueError(f"log_steps={self.effective_log_steps} must be a multiple of "
                             f"steps_per_execution={self.steps_per_execution}.")
        if self.init_model_dir is None and (self.bert_config is None or
                                            self.vocab_file is None):
            raise ValueError("Give init_model_dir, or bert_config and vocab_file.")
        if self.init_model_dir is not None and self.init_checkpoint is not None:
            raise ValueError("Give init_model_dir or init_checkpoint, not both.")

    @property
    def effective_log_steps(self):
        return self.log_steps or runner.default_log_steps(self.save_checkpoints_steps,
                                                          self.steps_per_execution)


def run_pretraining(config, distribution=None):
    """Pre-trains (and/or evaluates) as `config` says; returns the `BertPretrainer`.

    Under `config.model_dir`: `checkpoints/` (every `save_checkpoints_steps`, model
    and optimizer), `logs/train` (TensorBoard), and at the end the pre-trained model
    directory files (`bert_config.json`, `vocab.txt`, `text_config.json`,
    `model.weights.h5`, `task_config.json`) plus `pretraining_run.json`; with `do_eval`,
    `eval_results.json` and `logs/eval`. Started again with the same config after a
    crash or kill, it resumes from the newest checkpoint at the same place in the
    input stream (the consumed batches are skipped) and stops at the same final step.
    """
    startup.begin()
    import tensorflow as tf

    created = not tf.io.gfile.exists(config.model_dir)
    model_config, vocab_file, text_config, source_weights = runner.model_sources(config)
    distribution = distribution or create_distribution(config.distribution_strategy,
                                                       config.tpu)
    manager = CheckpointManager(os.path.join(config.model_dir, "checkpoints"),
                                config.keep_checkpoint_max)
    try:
        return _pretrain(config, distribution, manager, model_config, vocab_file,
                         text_config, source_weights)
    except ValueError:
        # Bad data or settings found before the first checkpoint (a truncated record,
        # ids beyond the vocabulary): the run leaves nothing behind, not a model
        # directory holding only a run file and an empty TensorBoard log.
        if (created and distribution.is_chief and not manager.latest_step()
                and tf.io.gfile.exists(config.model_dir)):
            tf.io.gfile.rmtree(config.model_dir)
        raise


def _pretrain(config, distribution, manager, model_config, vocab_file, text_config,
              source_weights):
    resume_step = manager.latest_step() or 0
    if config.do_train:
        if resume_step:
            runner.check_resume_settings(
                os.path.join(config.model_dir, RUN_CONFIG_FILE), config, RESUME_SETTINGS)
            print(f"Resuming at step {resume_step}: skipping the {resume_step} batches "
                  "the run consumed (read again, not trained on).")
        dataset, data_settings = training_input(config, distribution, model_config,
                                                vocab_file, text_config, resume_step)
        if distribution.is_chief:
            runner.write_run_config(os.path.join(config.model_dir, RUN_CONFIG_FILE),
                                    config, data=data_settings)
    else:  # evaluation alone: of the newest checkpoint, else of the starting weights
        if not resume_step and source_weights is None:
            raise ValueError(f"do_train=false and {config.model_dir} holds no checkpoint, "
                             "and no init_model_dir or init_checkpoint was given: "
                             "there is no trained model to evaluate.")
        keras.utils.set_random_seed(config.seed)
        _, data_settings = inputs.make_dataset(
            config, config.eval_input_file or config.input_file, config.eval_batch_size,
            model_config, vocab_file, text_config, is_training=False)
    model_config.validate_sequence_length(data_settings["max_seq_length"])
    nsp = data_settings["sentence_prediction"] != "none"

    accumulation = config.gradient_accumulation_steps
    startup.mark("data")
    remaining = config.num_train_steps - resume_step if config.do_train else 0
    # Nothing left to train (evaluation alone, a finished run): Keras' rule, no claim.
    compilation = RunCompilation(config, distribution, cpu_pays=cpu_xla_pays(
        remaining, model_config.hidden_size) if remaining > 0 else None,
        # From the whole run's steps, not those left: a resumed run keeps the
        # Grappler choice (and its rounding) of the run it continues.
        grappler=grappler_pays(config.num_train_steps, model_config.hidden_size)
        if remaining > 0 else None)
    # As in fine-tuning (`fine_tuning.compiled_task_model`): an encoder whose every
    # weight a checkpoint or the import replaces draws no random values; the heads do.
    replaced = source_weights is not None or manager.latest_step() is not None
    with distribution.scope():
        with weights_set_after() if replaced else contextlib.nullcontext():
            encoder = BertEncoder(model_config, dtype=config.mixed_precision,
                                  remat=config.remat)
        pretrainer = BertPretrainer(encoder, next_sentence_prediction=nsp)
        optimizer = create_optimizer(
            config.learning_rate, config.num_train_steps, config.num_warmup_steps,
            optimizer=config.optimizer,
            weight_decay=config.weight_decay,
            gradient_accumulation_steps=accumulation if accumulation > 1 else None)
        pretrainer.compile(optimizer=optimizer, jit_compile=compilation.jit_compile,
                           steps_per_execution=config.steps_per_execution)
        pretrainer.optimizer.build(pretrainer.trainable_variables)
        prepare_for_distribution(pretrainer, distribution)  # Keras 3.15 TF workarounds

        # Evaluation alone trains nothing: the checkpoint's optimizer state is not
        # needed (and may be another optimizer's than these flags build).
        step = manager.restore(pretrainer, final_step=config.num_train_steps
                               if config.do_train else 0)
        if step == 0 and source_weights is not None:
            source_weights(pretrainer)
    compilation.watch(pretrainer)
    startup.mark("model")

    if config.do_train and step < config.num_train_steps and distribution.is_chief:
        print(f"Pre-training {distribution.describe()}, steps {step} → "
              f"{config.num_train_steps}, global batch {config.train_batch_size}.")
    if config.do_train:
        step = runner.fit_steps(
            pretrainer, dataset, manager, start_step=step,
            num_train_steps=config.num_train_steps, log_steps=config.effective_log_steps,
            save_checkpoints_steps=config.save_checkpoints_steps,
            global_batch_size=config.train_batch_size, model_dir=config.model_dir,
            distribution=distribution, verbose=config.verbose,
            errors_named=inputs.input_errors_named(config.input_file),
            compilation=compilation)
    if config.do_eval:
        _evaluate(config, pretrainer, model_config, vocab_file, text_config,
                  distribution, step)
    if distribution.is_chief and config.do_train:
        save_model_dir(config.model_dir, pretrainer, vocab_file, text_config)
        print(f"Wrote the pre-trained model directory {config.model_dir}")
    return pretrainer


def training_input(config, distribution, model_config, vocab_file, text_config,
                   skip_batches=0):
    """`(dataset, settings)` of the training stream as this worker reads it: every
    worker builds the same stream (one seed) and keeps its DATA shard; a resumed run
    skips the `skip_batches` it consumed."""
    # First of all: the input stream's shuffles combine their seed with TensorFlow's
    # global seed, and the initial weights follow Keras' — the same in every process
    # and in a resumed run only if set before anything is built.
    keras.utils.set_random_seed(config.seed)
    dataset, settings = inputs.make_dataset(
        config, config.input_file, config.train_batch_size, model_config, vocab_file,
        text_config, is_training=True, skip_batches=skip_batches)
    return inputs.shard_for_workers(dataset, distribution), settings


def _evaluate(config, pretrainer, model_config, vocab_file, text_config, distribution,
              step):
    """Google's `--do_eval`: up to `max_eval_steps` batches of held-out data, one
    pass, fixed masks; results at the global step to eval_results.json and
    TensorBoard `logs/eval`."""
    pattern = config.eval_input_file or config.input_file
    dataset, _ = inputs.make_dataset(config, pattern, config.eval_batch_size,
                                     model_config, vocab_file, text_config,
                                     is_training=False)
    dataset = inputs.shard_for_workers(dataset.take(config.max_eval_steps), distribution)
    with inputs.input_errors_named(pattern):
        results = evaluate_to_the_end(pretrainer, dataset, return_dict=True, verbose=0)
    results = {k: float(v) for k, v in results.items()}
    if not distribution.is_chief:
        return results
    runner.write_scalars(os.path.join(config.model_dir, names.EVAL_LOGS_DIR), step, results)
    write_json(os.path.join(config.model_dir, EVAL_RESULTS_FILE),
                {**results, "global_step": step, "eval_input_file": pattern})
    print(f"Evaluation at step {step} on {pattern}: " +
          ", ".join(f"{k} {v:.4f}" for k, v in sorted(results.items())))
    return results
