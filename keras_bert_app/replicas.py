"""Cross-replica arithmetic under `tf.distribute`, for the few places that need it
(the pre-training loss, gradient clipping, gradient accumulation). On JAX and PyTorch
there is nothing to do: JAX data parallelism computes on the global batch."""

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


def synchronises_by_merge_call():
    """Whether this code runs in the replica function of a `tf.distribute` strategy
    that synchronises replicas (all-reduce, variable updates) through `merge_call`.
    TensorFlow refuses a `merge_call` inside a `tf.cond` branch there ("merge_call
    called while defining a new graph"), also with a single replica (`mirrored` on one
    GPU); see `cond_across_replicas`. Strategies that need no merge call (`mirrored`
    compiled with XLA on GPUs) may branch in the replica function."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return False
    # The test Keras' LossScaleOptimizer uses for the same decision.
    return not tf.__internal__.distribute.strategy_supports_no_merge_call()


def cond_across_replicas(predicate, true_fn, false_fn, args=()):
    """Runs `true_fn(*args)` in every replica if `predicate()`, else `false_fn(*args)`,
    where the branches may synchronise replicas. Call it from a replica function for
    which `synchronises_by_merge_call()`.

    The `tf.cond` is evaluated once, in cross-replica context (one `merge_call`), and
    each branch enters the replicas again, as Keras' `LossScaleOptimizer` does.
    `predicate` runs in cross-replica context: it must read state that every replica
    shares (e.g. an optimizer's iteration counter), so all replicas and workers take
    the same branch. `args` may hold per-replica values (gradients); each replica
    receives its own.
    """
    import tensorflow as tf

    def in_cross_replica_context(strategy, *args):
        run = strategy.extended.call_for_each_replica
        tf.cond(predicate(), lambda: run(true_fn, args=args),
                lambda: run(false_fn, args=args))

    tf.distribute.get_replica_context().merge_call(in_cross_replica_context, args=args)
