"""Workarounds for Keras' TensorFlow trainer (keras 3.15): under `tf.distribute`, and
a second trace of the train step (`build_before_fit`).

They live in `training/`, not `models/`, so that the models stay backend-agnostic: the
training side calls `prepare_for_distribution(model, distribution)` before `fit`.
The behaviour is installed on the model *instance* (instance attributes shadow the
trainer's methods, which Keras calls through `self`), so the model's class and its
saved config are untouched: a `.keras` file still loads as the same class, without
the workarounds.

All rely on private Keras behaviour; tests/training/keras_workarounds_test.py pins it
and checks that each workaround is still needed, so a Keras upgrade fails loudly.
"""

import keras

# Marks the functions installed here, so that a second call installs nothing.
_MARK = "_kba_distribution_workaround"


def prepare_for_distribution(model, distribution):
    """Makes `model.fit`/`evaluate` work under `distribution`'s `tf.distribute`
    strategy; a no-op on other backends and without a strategy.

    - Any strategy: before `fit`/`evaluate`, Keras' trainer builds the model
      symbolically from a peeked batch that it averages with `strategy.reduce`,
      which fails for dict inputs under `MultiWorkerMirroredStrategy`. That build
      is skipped when the model, its optimizer and its compiled losses/metrics are
      built already, so build the optimizer before `fit`
      (`model.optimizer.build(model.trainable_variables)`).
    - `MultiWorkerMirroredStrategy`: Keras averages each step's logs with
      `strategy.reduce("MEAN", v, axis=0)`, which rejects scalars; each replica's
      scalar log gets a length-1 axis to average over.

    Call it once the model is compiled; calling it again is harmless.

    Args:
        model: a compiled `keras.Model`, created under the strategy's scope.
        distribution: a `keras_bert_app.training.Distribution`, a
            `tf.distribute.Strategy`, or None.

    Returns:
        `model`.
    """
    strategy = getattr(distribution, "strategy", distribution)
    if strategy is None or keras.backend.backend() != "tensorflow":
        return model
    import tensorflow as tf  # only on the TensorFlow backend

    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError("prepare_for_distribution needs a Distribution or a "
                        f"tf.distribute.Strategy, got {distribution!r}.")
    _install(model, "_maybe_symbolic_build", _skip_symbolic_build_when_built)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        _install(model, "train_step", _with_reducible_logs)
        _install(model, "test_step", _with_reducible_logs)
    return model


def _install(model, method_name, make_replacement):
    """Shadows `model.<method_name>` with `make_replacement(model, original)` in the
    instance's `__dict__`; `original` is the method as bound before."""
    original = getattr(model, method_name)
    if getattr(original, _MARK, False):
        return
    replacement = make_replacement(model, original)
    setattr(replacement, _MARK, True)
    # A plain function, not a method: Keras' `self.<method_name>(...)` calls it as it
    # is. Set past Keras' attribute tracking, which has nothing to track here.
    object.__setattr__(model, method_name, replacement)


def _skip_symbolic_build_when_built(model, original):
    def _maybe_symbolic_build(iterator=None, data_batch=None):
        # The symbolic build only serves to build model, optimizer and compiled
        # losses/metrics (None when not compiled with any).
        pending = [getattr(model, "_compile_metrics", None),
                   getattr(model, "_compile_loss", None), model.optimizer]
        if model.built and all(p is None or p.built for p in pending):
            return
        original(iterator=iterator, data_batch=data_batch)

    return _maybe_symbolic_build


def build_before_fit(model, dataset):
    """Builds a multi-output model's compiled loss (with its compiled metrics and
    optimizer) from `dataset.element_spec` before `model.fit`. Keras' trainer does so
    itself only under a non-default `tf.distribute` strategy; otherwise the compiled
    loss is built inside the trace of the first train step, where a loss over more
    than one output adds a `Mean` tracker per output. A variable created inside a
    trace makes TensorFlow trace the whole step again (a `tf.function` creates
    variables in its first trace only, then retraces without): SQuAD's two-output
    loss cost every run a second trace of its train step.

    A no-op elsewhere, where the build would only add a symbolic pass over the model:
    off TensorFlow, when the model runs eagerly, for a single output (its loss adds
    no variable), when the loss is built already, and for a dataset without an
    `element_spec` of plain tensors."""
    if keras.backend.backend() != "tensorflow" or model.run_eagerly:
        return
    import tensorflow as tf  # only on the TensorFlow backend

    compile_loss = getattr(model, "_compile_loss", None)
    outputs = getattr(model, "outputs", None) or []
    if compile_loss is None or compile_loss.built or len(outputs) < 2:
        return
    spec = getattr(dataset, "element_spec", None)
    if spec is None or not all(isinstance(s, tf.TensorSpec)
                               for s in tf.nest.flatten(spec)):
        return  # a ragged or sparse input: left to Keras, which would densify it
    # Keras' own build from a batch's shapes and dtypes (private; pinned by
    # tests/training/keras_workarounds_test.py), given the specs as the batch.
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=spec)


def _with_reducible_logs(model, original):
    del model  # only the step's logs change

    # Signatures differ by backend; this runs on TensorFlow's `step(data)` only.
    def step(*args, **kwargs):
        return _reducible_logs(original(*args, **kwargs))

    return step


def _reducible_logs(logs):
    """`logs` with every scalar given a length-1 axis (`[]` → `[1]`), which
    `strategy.reduce("MEAN", v, axis=0)` averages over replicas and workers."""
    import tensorflow as tf

    return {k: tf.reshape(v, [1]) if getattr(v, "shape", None) is not None and
            v.shape.rank == 0 else v for k, v in logs.items()}


# The start of the UserWarning Keras 3.15's epoch iterator gives whenever a dataset of
# unknown length ends, in `evaluate` as in `fit`.
END_OF_DATA_WARNING = "Your input ran out of data"


def evaluate_to_the_end(model, dataset, **kwargs):
    """`model.evaluate(dataset, **kwargs)` on a finite dataset of unknown length
    (TFRecords, `take(max_eval_steps)`), without Keras' "ran out of data;
    interrupting training … use .repeat()" warning: reading up to the end is what an
    evaluation means, and the advice would be wrong. Other warnings pass through."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=END_OF_DATA_WARNING,
                                category=UserWarning)
        return model.evaluate(dataset, **kwargs)
