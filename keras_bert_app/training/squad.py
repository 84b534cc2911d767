"""`run_squad`: fine-tunes a `BertSpanLabeler` on SQuAD v1.1 / v2.0 with Google's
windowing and answer selection, writes Google's prediction files and the official
EM/F1; resumable after a kill (the runner pre-training and classifiers share)."""

import dataclasses
import os

import keras
import numpy as np

from keras_bert_app import names
from keras_bert_app.training import fine_tuning, runner, startup
from keras_bert_app.training.checkpointing import CheckpointManager, write_json
from keras_bert_app.training.distribution import create_distribution
from keras_bert_app.training.run_config import FineTuningSettings, positive

# What a resumed run must share with the run it continues.
RESUME_SETTINGS = ("train_file", "version_2_with_negative", "seed", "train_batch_size",
                   "max_seq_length", "doc_stride", "max_query_length", "num_train_epochs",
                   "num_train_steps", "save_checkpoints_steps", "log_steps",
                   "steps_per_execution", "learning_rate", "warmup_proportion",
                   "optimizer", "weight_decay", "skip_bad_records")
# Settings that decide the windows: a prediction must use the trained model's.
WINDOW_SETTINGS = ("max_seq_length", "doc_stride", "max_query_length",
                   "version_2_with_negative")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SquadRunConfig(FineTuningSettings):
    """Everything a SQuAD run needs; `pipelines.run_squad`'s flags (Google's names and
    defaults: `max_seq_length=384, doc_stride=128, max_query_length=64,
    n_best_size=20, max_answer_length=30`); model source, execution and schedule as
    every fine-tuning run (`FineTuningSettings`).

    Training counts steps as Google's `run_squad.py` does: `num_train_epochs` times
    the training *questions* over `train_batch_size` (a question may give several
    windows), unless `num_train_steps` is given. `do_predict` writes
    `predictions.json`, `nbest_predictions.json`, for v2.0 `null_odds.json`, and —
    when the predict file has gold answers, as SQuAD's dev files do —
    `eval_results.json` with the official scores.
    """

    train_file: str = None
    predict_file: str = None
    version_2_with_negative: bool = False
    do_predict: bool = False
    max_seq_length: int = 384
    doc_stride: int = 128
    max_query_length: int = 64
    n_best_size: int = 20
    max_answer_length: int = 30
    null_score_diff_threshold: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        if not (self.do_train or self.do_predict):
            raise ValueError("Nothing to do: set do_train and/or do_predict.")
        for flag, file in (("do_train", self.train_file), ("do_predict", self.predict_file)):
            if getattr(self, flag) and file is None:
                raise ValueError(f"{flag} needs {flag.replace('do_', '')}_file.")
        positive(self, "doc_stride", "max_query_length", "n_best_size", "max_answer_length")
        if self.max_query_length + 4 > self.max_seq_length:
            raise ValueError(f"max_query_length={self.max_query_length} leaves no room for "
                             f"context in max_seq_length={self.max_seq_length}.")

    @property
    def settings(self):
        """What the model directory records (names.SQUAD_SETTINGS)."""
        return {k: getattr(self, k) for k in names.SQUAD_SETTINGS}


def _features_dataset(features, batch_size, labels=False):
    import tensorflow as tf

    from keras_bert_app.tf_data_options import finish

    x = {names.INPUT_WORD_IDS: np.stack([f.input_word_ids for f in features]),
         names.INPUT_MASK: np.stack([f.input_mask for f in features]),
         names.INPUT_TYPE_IDS: np.stack([f.input_type_ids for f in features])}
    if not labels:
        return finish(tf.data.Dataset.from_tensor_slices(x).batch(batch_size))
    y = {names.START_LOGITS: np.array([f.start_position for f in features], np.int32),
         names.END_LOGITS: np.array([f.end_position for f in features], np.int32)}
    return finish(tf.data.Dataset.from_tensor_slices((x, y)))


def run_squad(config, distribution=None):
    """Trains and/or predicts as `config` says; returns the evaluation results (or {}).

    Under `config.model_dir`: `checkpoints/`, `logs/train` (and `logs/eval` with
    gold answers), `squad_run.json`, the fine-tuned model directory (its
    `task_config.json` records the sequence length and the SQuAD settings), and with
    `do_predict` Google's prediction files and `eval_results.json`. Every input file
    is read and checked before anything is trained or written.
    """
    startup.begin()
    from keras_bert_app.data.squad_data import read_squad

    skipped = []  # why each question skip_bad_records dropped was bad
    # Only training questions are ever skipped: predictions answer every question.
    train = read_squad(config.train_file, config.version_2_with_negative,
                       skip_bad_records=config.skip_bad_records, skipped=skipped) \
        if config.do_train else None
    predict = read_squad(config.predict_file, config.version_2_with_negative,
                         require_answers=False) if config.do_predict else None
    keras.utils.set_random_seed(config.seed)
    distribution = distribution or create_distribution(config.distribution_strategy,
                                                       config.tpu)
    manager = CheckpointManager(os.path.join(config.model_dir, "checkpoints"),
                                config.keep_checkpoint_max)
    if config.do_train:
        model, tokenizer, step = _train(config, train, distribution, manager,
                                        len(skipped))
        if config.do_predict:
            model = _float32(model, distribution)
    else:
        model, tokenizer, step = _trained(config, distribution)
    if not config.do_predict:
        return {}
    return _predict(config, predict, model, tokenizer, step, distribution.is_chief)


def _float32(model, distribution):
    """The trained weights in a float32 model without XLA: what the fine-tuned
    directory holds and the export serves, so predictions.json is what a server
    answers (mixed precision or XLA would move near-tied logits)."""
    from keras_bert_app.layers.initializers import weights_set_after
    from keras_bert_app.models import BertEncoder, BertSpanLabeler

    with distribution.scope(), weights_set_after():  # every weight is set below
        copy = BertSpanLabeler(BertEncoder(model.encoder.config))
    copy.set_weights([np.asarray(w) for w in model.get_weights()])
    return copy


def _windows(path, examples, tokenizer, config, is_training=False):
    from keras_bert_app.data.squad_features import squad_features

    try:
        return squad_features(examples, tokenizer, config.max_seq_length,
                              config.doc_stride, config.max_query_length, is_training)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def _train(config, examples, distribution, manager, skipped=0):
    """`skipped`: the training questions `skip_bad_records` dropped (recorded)."""
    from keras_bert_app.model_dir import save_span_labeler_dir
    from keras_bert_app.models import BertSpanLabeler
    from keras_bert_app.task_config import TaskConfig
    from keras_bert_app.text.tokenizer import BertTokenizer

    model_config, vocab_file, text_config, source_weights = runner.model_sources(config)
    model_config.validate_sequence_length(config.max_seq_length)
    tokenizer = BertTokenizer.from_text_config(vocab_file, text_config)
    features = _windows(config.train_file, examples, tokenizer, config, is_training=True)
    num_steps = config.num_train_steps or max(1, int(
        len(examples) * config.num_train_epochs / config.train_batch_size))
    save_steps = min(config.save_checkpoints_steps, num_steps)
    log_steps = config.log_steps or runner.default_log_steps(save_steps,
                                                             config.steps_per_execution)
    data = {"train_questions": len(examples), "train_windows": len(features)}
    if config.skip_bad_records:  # (absent otherwise: earlier runs' files still match)
        data["skipped_train_records"] = skipped
    resume_step = fine_tuning.resume_or_record(
        config, os.path.join(config.model_dir, names.SQUAD_RUN_FILE), RESUME_SETTINGS,
        manager, num_steps, data, distribution.is_chief)
    # Reshuffled every pass with the run's seed, so a resumed run sees the same
    # stream; the batches already trained on are skipped.
    dataset = _features_dataset(features, config.train_batch_size, labels=True).shuffle(
        len(features), seed=config.seed, reshuffle_each_iteration=True).repeat().batch(
        config.train_batch_size, drop_remainder=True).skip(resume_step)

    def build(encoder):
        # The span head reads the sequence output only: the pooler gets no gradient
        # (Hugging Face's QA model drops it). Frozen, it keeps its weights, has no
        # optimizer state and draws no "gradients do not exist" warning.
        encoder.get_layer("pooler").trainable = False
        return BertSpanLabeler(encoder)

    model, step, compilation = fine_tuning.compiled_task_model(
        config, model_config, build, num_steps=num_steps, manager=manager,
        distribution=distribution, initialize=fine_tuning.pretrained_weights(source_weights))
    if step < num_steps and distribution.is_chief:
        print(f"Fine-tuning for SQuAD {distribution.describe()}: {len(examples)} "
              f"questions in {len(features)} windows, steps {step} → {num_steps}, "
              f"batch {config.train_batch_size}.")
    runner.fit_steps(model, dataset, manager, start_step=step, num_train_steps=num_steps,
                     log_steps=log_steps, save_checkpoints_steps=save_steps,
                     global_batch_size=config.train_batch_size,
                     model_dir=config.model_dir, distribution=distribution,
                     verbose=config.verbose, compilation=compilation,
                     optimizer_state_at_end=False)  # never trained further
    if distribution.is_chief:
        task = TaskConfig(task=names.SQUAD_TASK, heads=[names.SPAN_HEAD],
                          max_seq_length=config.max_seq_length, settings=config.settings)
        save_span_labeler_dir(config.model_dir, model, vocab_file, text_config, task)
    return model, tokenizer, num_steps


def _trained(config, distribution):
    """Prediction alone: the fine-tuned SQuAD directory `model_dir` or
    `init_model_dir`, whose window settings the run must share."""
    from keras_bert_app.model_dir import load_span_labeler, read_task_config
    from keras_bert_app.text.tokenizer import BertTokenizer

    for directory in (config.model_dir, config.init_model_dir):
        task = read_task_config(directory) if directory else None
        if task is None or task.task != names.SQUAD_TASK:
            continue
        recorded = dict(task.settings, max_seq_length=task.max_seq_length)
        differ = [f"{k}={getattr(config, k)!r} (the model: {recorded[k]!r})"
                  for k in WINDOW_SETTINGS if getattr(config, k) != recorded[k]]
        if differ:
            raise ValueError(f"{directory} was trained with other window settings: "
                             + ", ".join(differ) + "; predict with the trained ones.")
        with distribution.scope():
            model, _ = load_span_labeler(directory)
        _record_prediction_settings(directory, task, config, distribution.is_chief)
        return model, BertTokenizer.from_model_dir(directory), None
    raise ValueError(f"do_train=false, and neither model_dir={config.model_dir} nor "
                     f"init_model_dir={config.init_model_dir} is a fine-tuned SQuAD "
                     "directory: there is no model to predict with.")


def _record_prediction_settings(directory, task, config, chief):
    """A prediction may choose its own n-best size, answer length and null threshold
    (v2.0's threshold is tuned on dev data after training); the directory then records
    the latest, which the export takes, so served answers match predictions.json."""
    settings = dict(task.settings, **{k: getattr(config, k) for k in (
        "n_best_size", "max_answer_length", "null_score_diff_threshold")})
    if settings == task.settings or not chief:
        return
    changed = ", ".join(f"{k}={settings[k]!r} (was {task.settings[k]!r})"
                        for k in settings if settings[k] != task.settings[k])
    dataclasses.replace(task, settings=settings).to_json_file(
        os.path.join(directory, names.TASK_CONFIG_FILE))
    print(f"Recorded in {directory}/{names.TASK_CONFIG_FILE}: {changed}")


def _predict(config, examples, model, tokenizer, step, chief):
    from keras_bert_app.training.squad_metrics import squad_v1_scores, squad_v2_scores
    from keras_bert_app.training.squad_predictions import squad_predictions

    features = _windows(config.predict_file, examples, tokenizer, config)
    logits = model.predict(_features_dataset(features, config.predict_batch_size),
                           verbose=0)
    predictions, nbest, null_odds = squad_predictions(
        examples, features, np.asarray(logits[names.START_LOGITS], np.float64),
        np.asarray(logits[names.END_LOGITS], np.float64), config.n_best_size,
        config.max_answer_length, config.version_2_with_negative,
        config.null_score_diff_threshold)
    if not chief:
        return {}
    write_json(os.path.join(config.model_dir, names.SQUAD_PREDICTIONS_FILE), predictions)
    write_json(os.path.join(config.model_dir, names.SQUAD_NBEST_FILE), nbest)
    if config.version_2_with_negative:
        write_json(os.path.join(config.model_dir, names.SQUAD_NULL_ODDS_FILE), null_odds)
    print(f"Wrote {len(predictions)} predictions ({len(features)} windows) to "
          f"{config.model_dir}")
    if not all(e.has_gold for e in examples):
        print(f"{config.predict_file} has questions without answers: no scores.")
        return {}
    # Scored as the official evaluation scripts score them.
    if config.version_2_with_negative:
        # "No answer" above the run's threshold, as predictions.json answers (for a
        # threshold <= 1 the official script's default of 1.0 scores the same).
        results = squad_v2_scores(examples, predictions, na_probs=null_odds,
                                  na_prob_thresh=config.null_score_diff_threshold)
    else:
        results = squad_v1_scores(examples, predictions)
    if step is not None:
        results["global_step"] = step
        runner.write_scalars(os.path.join(config.model_dir, names.EVAL_LOGS_DIR), step,
                             {k: v for k, v in results.items()
                              if isinstance(v, float) and not k.endswith("_thresh")})
    results["predict_file"] = config.predict_file
    write_json(os.path.join(config.model_dir, names.EVAL_RESULTS_FILE), results)
    print("eval_results: " + ", ".join(
        f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in sorted(results.items()) if k != "predict_file"))
    return results
