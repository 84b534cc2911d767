"""`run_pretraining`: masked-LM + NSP/SOP pre-training with `model.fit` under a
distribution, resumable after a kill, ending in a pre-trained model directory."""

import dataclasses
import json
import math
import os

import keras

from keras_bert_app import names
from keras_bert_app.config import BertConfig
from keras_bert_app.model_dir import load_pretrainer, model_dir_files, save_model_dir
from keras_bert_app.models import BertEncoder, BertPretrainer
from keras_bert_app.training import callbacks as run_callbacks
from keras_bert_app.training.checkpointing import CheckpointManager
from keras_bert_app.training.distribution import STRATEGIES, create_distribution
from keras_bert_app.training.optimizers import OPTIMIZERS, create_optimizer

INPUT_FORMATS = ("auto", "tfrecord", "text")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
RUN_CONFIG_FILE = "pretraining_run.json"


@dataclasses.dataclass(frozen=True)
class PretrainingRunConfig:
    """Everything a pre-training run needs; `pipelines.run_pretraining`'s flags.

    The model comes from `init_model_dir` (config, vocabulary and casing; its
    weights are the starting point) or from `bert_config` + `vocab_file` +
    `do_lower_case` (optionally starting from the Google TF1 checkpoint or Hugging
    Face directory `init_checkpoint`). Input is `create_pretraining_data`'s
    TFRecords (their metadata decides the sequence length, masking and sentence
    task, and is checked against the model) or raw text, masked dynamically.

    Steps count batches of `train_batch_size` (the global batch, over all
    replicas). With `gradient_accumulation_steps=k` the optimizer updates every k
    batches; the learning-rate schedule still counts batches (Keras evaluates it at
    its batch counter).
    """

    input_file: str
    model_dir: str
    bert_config: BertConfig = None
    vocab_file: str = None
    do_lower_case: bool = None
    init_checkpoint: str = None
    init_model_dir: str = None
    input_format: str = "auto"
    # Raw-text input only (TFRecords carry their own, in their metadata).
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    sentence_prediction: str = "nsp"
    do_whole_word_mask: bool = False
    # Optimisation.
    train_batch_size: int = 32
    num_train_steps: int = 100_000
    num_warmup_steps: int = 10_000
    learning_rate: float = 1e-4
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    gradient_accumulation_steps: int = 1
    # Execution.
    distribution_strategy: str = "default"
    tpu: str = None
    mixed_precision: str = "float32"
    jit_compile: bool = False
    steps_per_execution: int = 1
    save_checkpoints_steps: int = 1000
    log_steps: int = None
    keep_checkpoint_max: int = 3
    seed: int = None  # initial weights and the input pipeline
    verbose: object = "auto"

    def __post_init__(self):
        _one_of("input_format", self.input_format, INPUT_FORMATS)
        _one_of("mixed_precision", self.mixed_precision, PRECISIONS)
        _one_of("distribution_strategy", self.distribution_strategy, STRATEGIES)
        _one_of("optimizer", self.optimizer, OPTIMIZERS)
        _one_of("sentence_prediction", self.sentence_prediction,
                names.SENTENCE_PREDICTION_MODES)
        for field in ("train_batch_size", "num_train_steps", "steps_per_execution",
                      "save_checkpoints_steps", "gradient_accumulation_steps",
                      "keep_checkpoint_max"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field}={getattr(self, field)} must be positive.")
        if not 0 <= self.num_warmup_steps <= self.num_train_steps:
            raise ValueError(f"num_warmup_steps={self.num_warmup_steps} must be in "
                             f"[0, num_train_steps={self.num_train_steps}].")
        if self.save_checkpoints_steps % self.effective_log_steps:
            raise ValueError(f"save_checkpoints_steps={self.save_checkpoints_steps} must be "
                             f"a multiple of log_steps={self.effective_log_steps}.")
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
        return self.log_steps or math.gcd(self.save_checkpoints_steps, 100 *
                                          self.steps_per_execution)


def run_pretraining(config, distribution=None):
    """Pre-trains as `config` says; returns the trained `BertPretrainer`.

    Under `config.model_dir`: `checkpoints/` (every `save_checkpoints_steps`, model
    and optimizer), `logs/train` (TensorBoard), and at the end the pre-trained model
    directory files (`bert_config.json`, `vocab.txt`, `text_config.json`,
    `model.weights.h5`) plus `pretraining_run.json`. Started again with the same
    config after a crash or kill, it resumes from the newest checkpoint and stops at
    the same final step.
    """
    model_config, vocab_file, text_config, source_weights = _model_sources(config)
    distribution = distribution or create_distribution(config.distribution_strategy,
                                                       config.tpu)
    dataset, data_settings = _dataset(config, model_config, vocab_file, text_config,
                                      distribution)
    model_config.validate_sequence_length(data_settings["max_seq_length"])
    nsp = data_settings["sentence_prediction"] != "none"

    accumulation = config.gradient_accumulation_steps
    if config.seed is not None:  # the same initial weights in every process and run
        keras.utils.set_random_seed(config.seed)
    with distribution.scope():
        encoder = BertEncoder(model_config, dtype=config.mixed_precision)
        pretrainer = BertPretrainer(encoder, next_sentence_prediction=nsp)
        optimizer = create_optimizer(
            config.learning_rate, config.num_train_steps, config.num_warmup_steps,
            optimizer=config.optimizer,
            weight_decay=config.weight_decay,
            gradient_accumulation_steps=accumulation if accumulation > 1 else None)
        pretrainer.compile(optimizer=optimizer, jit_compile=config.jit_compile,
                           steps_per_execution=config.steps_per_execution)
        pretrainer.optimizer.build(pretrainer.trainable_variables)

        manager = CheckpointManager(os.path.join(config.model_dir, "checkpoints"),
                                    config.keep_checkpoint_max)
        step = manager.restore(pretrainer)
        if step == 0 and source_weights is not None:
            source_weights(pretrainer)

    log_steps = config.effective_log_steps
    if step % log_steps and step < config.num_train_steps:
        raise ValueError(f"The newest checkpoint is at step {step}, not a multiple of "
                         f"log_steps={log_steps}: resume with the original settings.")
    if step < config.num_train_steps:
        if distribution.is_chief:
            print(f"Pre-training {distribution.describe()}, steps {step} → "
                  f"{config.num_train_steps}, global batch {config.train_batch_size}.")
        callbacks = [
            run_callbacks.StepLimit(config.num_train_steps, log_steps),
            run_callbacks.PeriodicCheckpoint(manager, config.save_checkpoints_steps,
                                             config.num_train_steps, log_steps,
                                             enabled=distribution.is_chief),
        ]
        if distribution.is_chief:
            callbacks.append(run_callbacks.TensorBoardScalars(
                os.path.join(config.model_dir, "logs", "train"), config.train_batch_size,
                log_steps, config.num_train_steps))
        pretrainer.fit(dataset, epochs=math.ceil(config.num_train_steps / log_steps),
                       initial_epoch=step // log_steps, steps_per_epoch=log_steps,
                       callbacks=callbacks, shuffle=False,
                       verbose=config.verbose if distribution.is_chief else 0)
    if distribution.is_chief:
        save_model_dir(config.model_dir, pretrainer, vocab_file, text_config)
        _write_run_config(config, data_settings)
    return pretrainer


def _model_sources(config):
    """(BertConfig, vocab file, TextConfig, fn that loads the starting weights)."""
    from keras_bert_app.text.text_config import TextConfig

    if config.init_model_dir is not None:
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
        return model_config, vocab_file, text_config, \
            lambda pretrainer: _load_model_dir(pretrainer, config.init_model_dir)
    if config.do_lower_case is None:
        raise ValueError("do_lower_case must be given with vocab_file.")
    if not os.path.isfile(config.vocab_file):
        raise FileNotFoundError(f"vocab_file {config.vocab_file} does not exist.")
    text_config = TextConfig.for_vocab(config.vocab_file, config.do_lower_case)
    source = None
    if config.init_checkpoint is not None:
        source = lambda pretrainer: _load_checkpoint(pretrainer, config.init_checkpoint)
    return config.bert_config, config.vocab_file, text_config, source


def _load_model_dir(pretrainer, model_dir):
    from keras_bert_app.checkpoints.importer import load_into
    from keras_bert_app.checkpoints.weight_names import model_variables

    source = load_pretrainer(model_dir)
    weights = {name: keras.ops.convert_to_numpy(variable)
               for name, variable in model_variables(source).items()}
    _check_report(load_into(pretrainer, weights, model_dir))


def _load_checkpoint(pretrainer, path):
    from keras_bert_app.checkpoints import importer

    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json")):
        weights, source = importer.read_hf_weights(path)
        google, unused, skipped = importer.hf_to_google(weights)
    else:
        google, skipped = importer.tf1_to_google(importer.read_tf1_weights(path))
        source, unused = path, []
    _check_report(importer.load_into(pretrainer, google, source, unused, skipped))


def _check_report(report):
    print(report.format())
    encoder_missing = [n for n in report.missing if n.startswith("bert/")]
    if encoder_missing:
        raise ValueError(f"{report.source} lacks encoder weights: {encoder_missing[:5]}"
                         f"{' …' if len(encoder_missing) > 5 else ''}")


def _dataset(config, model_config, vocab_file, text_config, distribution):
    import tensorflow as tf

    from keras_bert_app.data import pretraining_dataset, read_metadata
    from keras_bert_app.data.raw_text_dataset import raw_text_pretraining_dataset

    files = sorted(tf.io.gfile.glob(config.input_file))
    if not files:
        raise FileNotFoundError(f"input_file {config.input_file} matches no file.")
    input_format = config.input_format
    if input_format == "auto":
        beside = {os.path.join(os.path.dirname(f), names.PRETRAINING_METADATA_FILE)
                  for f in files}
        input_format = "tfrecord" if all(os.path.isfile(p) for p in beside) else "text"
    if input_format == "tfrecord":
        _, metadata = read_metadata(config.input_file)
        if metadata["do_lower_case"] != text_config.do_lower_case:
            raise ValueError(f"The records of {config.input_file} were made with "
                             f"do_lower_case={metadata['do_lower_case']}, the model's text "
                             f"settings say {text_config.do_lower_case}.")
        dataset = pretraining_dataset(
            config.input_file, config.train_batch_size, metadata["max_seq_length"],
            metadata["max_predictions_per_seq"], vocab_size=model_config.vocab_size,
            vocab_sha256=text_config.vocab_sha256, seed=config.seed)
        settings = {k: metadata[k] for k in (
            "max_seq_length", "max_predictions_per_seq", "masked_lm_prob",
            "do_whole_word_mask", "sentence_prediction")}
        settings["input"] = "tfrecord"
    else:
        from keras_bert_app.text.vocab import load_vocab

        vocab_size = len(load_vocab(vocab_file))
        if vocab_size != model_config.vocab_size:
            raise ValueError(f"{vocab_file} has {vocab_size} tokens; the model's "
                             f"vocab_size is {model_config.vocab_size}.")
        dataset = raw_text_pretraining_dataset(
            config.input_file, vocab_file, config.train_batch_size,
            do_lower_case=text_config.do_lower_case,
            max_seq_length=config.max_seq_length,
            max_predictions_per_seq=config.max_predictions_per_seq,
            masked_lm_prob=config.masked_lm_prob, short_seq_prob=config.short_seq_prob,
            sentence_prediction=config.sentence_prediction,
            do_whole_word_mask=config.do_whole_word_mask, seed=config.seed)
        settings = {"input": "text", "max_seq_length": config.max_seq_length,
                    "max_predictions_per_seq": config.max_predictions_per_seq,
                    "masked_lm_prob": config.masked_lm_prob,
                    "do_whole_word_mask": config.do_whole_word_mask,
                    "sentence_prediction": config.sentence_prediction}
    if distribution.num_workers > 1:
        # Each worker reads every file and keeps its share of the batches: correct
        # for any file count (file sharding would need at least one per worker).
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.DATA
        dataset = dataset.with_options(options)
    return dataset, settings


def _write_run_config(config, data_settings):
    values = {k: v for k, v in dataclasses.asdict(config).items() if k != "bert_config"}
    values["data"] = data_settings
    partial = os.path.join(config.model_dir, RUN_CONFIG_FILE + ".partial")
    with open(partial, "w") as f:
        json.dump(values, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    os.replace(partial, os.path.join(config.model_dir, RUN_CONFIG_FILE))


def _one_of(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name}={value!r}; expected one of {list(allowed)}.")
