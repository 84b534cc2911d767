"""TensorFlow-only tracing help, kept out of `layers/` and `models/` (which use
`keras.ops` and run on every backend): Keras' `predict` traced once for dynamically
padded batches, `fit`'s train step traced once instead of twice, and a one-op
sequence product for graphs that run without Grappler. TensorFlow is imported only
on that backend, inside the functions."""

import keras


def trace_predict_once(model, x, any_length=False):
    """On TensorFlow, traces `model`'s predict function once for every batch that
    the dataset `x` can yield: for its `element_spec`, or with `any_length` for
    batches of any shape of the same ranks (every dimension unknown: a caller that
    predicts datasets of several fixed lengths in turn). Anything else: nothing.

    Why: Keras calls its predict function on each batch's tensors with
    `reduce_retracing`, so dynamically padded batches trace it again for each new
    shape until the varying dimensions are relaxed ([32, 16], then [32, None], then
    [None, None] for the last, smaller batch); each trace is then optimised again at
    its first call. Measured: predicting 872 SST-2 sentences with MiniLM took 5.7 s
    with three traces, 4.5 s with this one (a second prediction: 2.9-3.0 s). Later
    calls use this trace, the most specific one that fits their shapes.

    Relies on Keras' `make_predict_function` and `predict_function` (a `tf.function`
    taking a list of `steps_per_execution` batches);
    tests/models/task_models_test.py fails if it stops tracing once.
    """
    if keras.backend.backend() != "tensorflow" or model.run_eagerly:
        return
    import tensorflow as tf  # only on the TensorFlow backend

    if not isinstance(x, tf.data.Dataset) or model.steps_per_execution != 1:
        return
    with model.distribute_strategy.scope():
        if tf.distribute.has_strategy():
            return  # the function then takes per-replica values, not tensors
    spec = x.element_spec
    if any_length:
        spec = tf.nest.map_structure(
            lambda s: tf.TensorSpec([None] * len(s.shape), s.dtype, s.name)
            if isinstance(s, tf.TensorSpec) else s, spec)
    model.make_predict_function()
    if hasattr(model.predict_function, "get_concrete_function"):
        model.predict_function.get_concrete_function([spec])


def build_optimizer_before_fit(model):
    """On TensorFlow, builds `model`'s optimizer (for its trainable weights) before
    `fit` traces the train step, unless it is built already or there is nothing to
    train. Anything else: nothing.

    Why: without a `tf.distribute` strategy, Keras' TensorFlow trainer leaves the
    optimizer to be built inside the first trace of the train step, and a
    `tf.function` that creates variables in its first trace traces everything again
    without them. The README's fit-on-strings example (MiniLM, AdamW, 6 steps) traced
    its train step twice, 4.8 s and 2.6 s; built first, once (the whole script, with
    the preprocessor's one `pack` trace: 22.5-26.0 s to 16.6-16.8 s on 2 cores).
    Keras itself builds the same way (`optimizer.build(model.trainable_variables)`)
    under a strategy, and the pipelines do before their `fit`
    (`training/fine_tuning.py`). Only the optimizer's variables: a compiled loss
    over several outputs (`BertSpanLabeler`) or a metric given by name still adds
    its own in the first trace (the pipelines build those too:
    `training.keras_workarounds.build_before_fit`).
    tests/models/task_models_test.py fails if Keras stops tracing twice without it
    or if `fit` traces more than once with it.
    """
    if keras.backend.backend() != "tensorflow" or model.run_eagerly:
        return
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or optimizer.built or not model.built or \
            not model.trainable_variables:  # all frozen: nothing to update
        return
    with model.distribute_strategy.scope():
        optimizer.build(model.trainable_variables)


def untouched_graph_product(x, kernel):
    """`x @ kernel` for `x` `[batch, seq, in]` and `kernel` `[in, out]` as one
    TensorFlow `Einsum` op, when the graph being traced will run without Grappler
    (`tf.config.optimizer`'s `disable_meta_optimizer`, as `RunCompilation.training`
    sets for a short CPU run); None otherwise, for the caller's own product.

    Why: Keras' `matmul` of a rank-3 by a rank-2 tensor is `tf.tensordot`, ~15 ops
    of dynamic-shape arithmetic, reshapes and transposes around one `MatMul`, in the
    forward graph and again in the gradient. Grappler folds them away; without it
    every one is traced (MiniLM's first fine-tuning step took ~0.5 s less on 2
    cores) and executed at every step. With Grappler the `MatMul` form is
    ~3% faster a step than `Einsum` on a CPU, so it stays there. (`keras.ops.einsum`
    would not do: Keras turns this subscript into a broadcasting `BatchMatMulV2`,
    whose kernel gradient made the steps ~40% slower.) Both compute the same
    product: outputs agree to float32 rounding. A function traced one way and run
    the other is still right, only not the fastest.
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf  # only on the TensorFlow backend

    if x.shape.rank != 3 or len(kernel.shape) != 2 or not tf.inside_function() or \
            not tf.config.optimizer.get_experimental_options().get(
                "disable_meta_optimizer", False):
        return None
    kernel = tf.convert_to_tensor(kernel)  # the compute dtype under mixed precision
    if x.dtype != kernel.dtype:
        return None
    return tf.einsum("abc,cd->abd", x, kernel)
