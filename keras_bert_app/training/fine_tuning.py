"""What every fine-tuning runner (`run_classifier`, `run_squad`, `run_ner`,
`run_multiple_choice`) shares beyond the step loop of `runner`: the schedule in
steps, the task model built, compiled and started from its weights, evaluation at
every checkpoint with the best weights kept, and the float32 model a run ends with.

A task brings its data as an object with this protocol (`ClassifierData`, `NerData`,
`MultipleChoiceData`):
- `eval_sets`: `[(split name, examples)]`; `predict(model, examples, batch_size)` →
  `(outputs, mean loss)`; `metrics(examples, outputs)` → `{name: float}`;
- `metric` (the one choosing the best checkpoint) and `better(value, best)`;
- `classifier_copy(model)`: a float32 copy of the model, not compiled (no optimizer
  state; its `jit_compile` is Keras' "auto": XLA on a GPU, not on a CPU) — what best
  checkpoints and the model directory hold, and what is evaluated, so the recorded
  results are the served model's even under mixed precision;
- `problem_type` (`single_label` adds a confusion matrix to the TensorBoard logs).
"""

import contextlib
import dataclasses
import json
import math
import os

import keras
import numpy as np

from keras_bert_app import names
from keras_bert_app.training import runner, startup
from keras_bert_app.files import removed_on_failure
from keras_bert_app.training.checkpointing import write_json

# checkpoints/best/: the best evaluated weights and their record.
BEST_DIR = "best"
BEST_RECORD = "best.json"


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A run's length and intervals, in optimizer steps."""

    num_steps: int
    save_steps: int
    log_steps: int


def schedule(config, num_examples):
    """The steps of `config.num_train_epochs` passes over `num_examples` (or
    `config.num_train_steps`); a checkpoint (and evaluation) every
    `save_checkpoints_steps`, by default about once an epoch rounded up to whole
    logging intervals of at most 100 steps (each a Keras "epoch": fewer host round
    trips than a short one)."""
    num_steps = config.num_train_steps or max(1, int(
        num_examples * config.num_train_epochs / config.train_batch_size))
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
    return Schedule(num_steps, save_steps, log_steps)


def resume_or_record(config, run_file, resume_settings, manager, num_steps, settings,
                     chief):
    """The step a run resumes at (0 for a new run). A resumed run must share
    `resume_settings` and the data's `settings` with the run recorded in `run_file`
    (compared with the step count the epochs came to); the chief (re)writes it."""
    step = manager.latest_step() or 0
    if step:
        runner.check_resume_settings(run_file, dataclasses.replace(
            config, num_train_steps=num_steps), resume_settings, data=settings)
        print(f"Resuming at step {step} of {num_steps}.")
    if chief:
        runner.write_run_config(run_file, config, data=settings, num_train_steps=num_steps)
    return step


def compiled_task_model(config, model_config, build, *, num_steps, manager,
                        distribution, initialize, compile_args=None):
    """`(model, step, compilation)`: `build(encoder)` in the distribution's scope
    (the encoder in `config.mixed_precision`), compiled with BERT's optimizer and
    schedule, restored from the newest checkpoint; a new run (step 0) starts with
    `initialize(encoder)` (e.g. `runner.model_sources`' weights; None: random).
    `initialize` must set every encoder weight or raise: the encoder it fills is
    built without drawing random values (`layers.initializers.weights_set_after`).
    `compile_args(model)`: more `compile` arguments (a loss and metrics for a model
    without its own). `compilation`: the run's `RunCompilation` (XLA decision, cache,
    trace count), for `runner.fit_steps`."""
    from keras_bert_app.layers.initializers import weights_set_after
    from keras_bert_app.models import BertEncoder
    from keras_bert_app.training.compilation import RunCompilation, grappler_pays
    from keras_bert_app.training.keras_workarounds import prepare_for_distribution
    from keras_bert_app.training.optimizers import create_optimizer

    startup.mark("data")
    # Every encoder weight is about to be replaced, by the newest checkpoint or by
    # `initialize` (an import lacking an encoder weight raises): its random initial
    # values are not drawn (~0.4 s for MiniLM). The task's head is drawn as usual.
    replaced = initialize is not None or manager.latest_step() is not None
    # The run's planned steps decide Grappler (`grappler_pays`): the same for a
    # resumed run, which keeps the graphs (and their rounding) of the run it continues.
    compilation = RunCompilation(config, distribution, grappler=grappler_pays(
        num_steps, model_config.hidden_size))
    with distribution.scope():
        with weights_set_after() if replaced else contextlib.nullcontext():
            encoder = BertEncoder(model_config, dtype=config.mixed_precision,
                                  remat=config.remat)
        model = build(encoder)
        model.compile(optimizer=create_optimizer(
            config.learning_rate, num_steps, int(num_steps * config.warmup_proportion),
            optimizer=config.optimizer, weight_decay=config.weight_decay),
            jit_compile=compilation.jit_compile,
            steps_per_execution=config.steps_per_execution,
            **(compile_args(model) if compile_args else {}))
        model.optimizer.build(model.trainable_variables)
        prepare_for_distribution(model, distribution)
        step = manager.restore(model, final_step=num_steps)
        if step == 0 and initialize is not None:
            initialize(encoder)
    compilation.watch(model)
    startup.mark("model")
    return model, step, compilation


def pretrained_weights(source_weights):
    """`initialize` for `compiled_task_model` from `runner.model_sources`' loader: the
    import checks every encoder weight; the pre-training heads it also fills are
    dropped with the wrapper."""
    from keras_bert_app.models import BertPretrainer

    if source_weights is None:
        return None
    return lambda encoder: source_weights(BertPretrainer(encoder))


def train_and_keep_best(config, data, model, dataset, manager, distribution, schedule,
                        start_step, compilation=None):
    """Trains `model` from `start_step` (`runner.fit_steps`), evaluating at every
    checkpoint when `config.do_eval`. The last checkpoint holds no optimizer state:
    a fine-tuning run's resume settings include its step count, so nothing trains on
    from it (`checkpointing`). Returns `(model, weights_file)`: the float32
    copy the run ends with (the best evaluated weights, else the last), and the best
    weights file when this process wrote it from that copy as it is now (the model
    directory can link it instead of writing the same bytes again), else None."""
    callbacks = []
    if config.do_eval:
        callbacks.append(BestCheckpoint(config, data, manager, schedule,
                                        distribution.is_chief))
    from keras_bert_app.layers.initializers import load_every_weight

    evaluated = callbacks[0] if callbacks else None
    runner.fit_steps(model, dataset, manager, start_step=start_step,
                     num_train_steps=schedule.num_steps, log_steps=schedule.log_steps,
                     save_checkpoints_steps=schedule.save_steps,
                     global_batch_size=config.train_batch_size,
                     model_dir=config.model_dir, distribution=distribution,
                     verbose=config.verbose, callbacks=callbacks,
                     compilation=compilation, optimizer_state_at_end=False)
    best = best_record(manager) if config.do_eval else None
    if evaluated is not None and evaluated.copy is not None:
        # The copy the evaluations used: built and traced already (a second copy
        # would cost a model build and its prediction traces again).
        final = evaluated.copy
        if best is not None and best["step"] == evaluated.saved_step == evaluated.copy_step:
            # It still holds the weights it wrote as the best (the usual end: the last
            # evaluation is the best): reading them back would change nothing.
            return final, best_weights(manager, best)
        final.set_weights([np.asarray(w) for w in model.get_weights()])
    else:
        final = data.classifier_copy(model)
    if best is not None:
        load_every_weight(final, best_weights(manager, best))
    return final, None


class BestCheckpoint(keras.callbacks.Callback):
    """Evaluates a float32 copy of the model at each checkpoint (every worker: the
    copy may be distributed); the chief keeps the best weights on `data.metric` in
    `checkpoints/best/` with their results (`best.json`), across restarts."""

    def __init__(self, config, data, manager, schedule, chief):
        super().__init__()
        self.config, self.data, self.manager = config, data, manager
        self.schedule, self.chief = schedule, chief
        self.copy = None  # built once: its prediction functions are traced once
        self.copy_step = None  # the step whose weights the copy holds
        self.saved_step = None  # the step of the best weights this process saved

    def on_epoch_end(self, epoch, logs=None):
        step = min((epoch + 1) * self.schedule.log_steps, self.schedule.num_steps)
        if step % self.schedule.save_steps and step < self.schedule.num_steps:
            return
        if self.copy is None:
            self.copy = self.data.classifier_copy(self.model)
        else:
            self.copy.set_weights([np.asarray(w) for w in self.model.get_weights()])
        self.copy_step = step
        results = evaluate(self.config, self.data, self.copy, step, self.chief)
        if not self.chief:
            return
        metric = self.data.metric
        best = best_record(self.manager)
        if best is None or self.data.better(results[metric], best["results"][metric]):
            # New weights under a new name, then the record naming them (atomic),
            # then the old file: a kill at any point leaves a record and its weights.
            directory = os.path.join(self.manager.directory, BEST_DIR)
            os.makedirs(directory, exist_ok=True)
            name = f"best-{step}.weights.h5"
            partial = os.path.join(directory, ".partial-" + name)
            with removed_on_failure(partial):
                self.copy.save_weights(partial)
            os.replace(partial, os.path.join(directory, name))
            self.saved_step = step
            write_json(os.path.join(directory, BEST_RECORD),
                       {"step": step, "metric": metric, "results": results,
                        "weights": name})
            if best is not None and best["weights"] != name:
                old = os.path.join(directory, best["weights"])
                if os.path.isfile(old):
                    os.remove(old)
            print(f"New best {metric} {results[metric]:.4f} at step {step}.")


def best_record(manager):
    """The record of the best evaluated checkpoint (`step`, `metric`, `results`,
    `weights`), or None."""
    path = os.path.join(manager.directory, BEST_DIR, BEST_RECORD)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def best_weights(manager, best):
    return os.path.join(manager.directory, BEST_DIR, best["weights"])


def evaluate(config, data, model, step, chief=True):
    """Metrics of every evaluation split; the first split's keys are plain, others
    are prefixed with the split (`dev_mismatched/accuracy`). The chief writes them to
    `logs/eval`, and for single-label problems the split's confusion matrix (int64
    [k, k], rows true, columns predicted) as a tensor summary under the same prefix."""
    from keras_bert_app.data.classification_data import label_ids
    from keras_bert_app.training import classification_metrics as cm

    results = {}
    log_dir = os.path.join(config.model_dir, names.EVAL_LOGS_DIR)
    for index, (split, examples) in enumerate(data.eval_sets):
        outputs, loss = data.predict(model, examples, config.eval_batch_size)
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


def final_results(config, data, model, manager, step, chief=True):
    """`(results, extra)`: the best checkpoint's recorded results after training
    (extra: `global_step`, `best_step`, `metric`), else an evaluation of `model`
    now (extra: `global_step` when it trained)."""
    best = best_record(manager) if config.do_train else None
    if best is not None:
        return dict(best["results"]), {"global_step": step, "best_step": best["step"],
                                       "metric": best["metric"]}
    results = evaluate(config, data, model, step or 0, chief)
    return results, ({"global_step": step} if step is not None else {})
