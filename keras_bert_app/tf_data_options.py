"""The `tf.data` options every dataset the project builds ends with.

Why: with `tf.data`'s autotuning model on (TensorFlow's default), an iterator that is
destroyed before its end — `fit(steps_per_epoch=N)` on a repeated dataset, an
`evaluate` on `ds.take(n)`, a checkpoint interval that ends mid-dataset — can block in
its destructor until the model's background thread ("tf_data_model") wakes from its
sleep. That thread re-optimises on a period that doubles up to 60 s, so the wait grows
with how long the iterator lived: bert_small pre-training, 20 steps of ~3.5 s on
`pretraining_dataset`, `fit` returned 18–37 s after its last step (TensorFlow 2.21,
2 cores; `benchmarks/teardown_benchmark.py`). With the model off there is no such
thread and `fit` returns at once.

What the model would tune is kept without it: `num_parallel_calls=AUTOTUNE` then runs
at the machine's parallelism, and `prefetch(AUTOTUNE)` keeps its own buffer sizing
(the prefetch "legacy autotuner", which needs no model thread). Measured step
throughput with the model off equals it on (same benchmark, quiet machine: 0.99–1.01x
for all six dataset kinds), so nothing is traded for the shorter teardown.

A user's own pipeline needs the same: `dataset.with_options(kba.data.dataset_options())`
(or `finish(dataset)`), or let its iterators run to their end.
"""

import tensorflow as tf


def dataset_options():
    """`tf.data.Options` with the autotuning model (and its teardown wait) off."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def finish(dataset):
    """`dataset` with `dataset_options()`: the last step of every project pipeline."""
    return dataset.with_options(dataset_options())


def autotune_model_enabled(dataset):
    """Whether iterators of `dataset` run the autotuning model thread (TensorFlow's
    default when no option says otherwise)."""
    enabled = dataset.options().autotune.enabled
    return True if enabled is None else bool(enabled)
