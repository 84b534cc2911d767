"""Tracing help for Keras' `predict` on TensorFlow, kept out of `models/` (which use
`keras.ops` only and run on every backend)."""

import keras


def trace_predict_once(model, x):
    """On TensorFlow, traces `model`'s predict function once for every batch that
    the dataset `x` can yield: for its `element_spec`. Anything else: nothing.

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
    model.make_predict_function()
    if hasattr(model.predict_function, "get_concrete_function"):
        model.predict_function.get_concrete_function([x.element_spec])
