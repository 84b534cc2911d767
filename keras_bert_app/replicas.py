"""Cross-replica arithmetic under `tf.distribute`, for the few places that need it
(the pre-training loss and gradient clipping). On JAX and PyTorch there is nothing to
do: JAX data parallelism computes on the global batch."""

import keras


def replica_context():
    """The `tf.distribute` replica context when several replicas run in sync, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf  # only on the TensorFlow backend

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def sum_over_replicas(values, context):
    """`values` (a list; None entries pass through) summed over the replicas."""
    import tensorflow as tf  # a context exists only on the TensorFlow backend

    present = [v for v in values if v is not None]
    summed = iter(context.all_reduce(tf.distribute.ReduceOp.SUM, present))
    return [None if v is None else next(summed) for v in values]
