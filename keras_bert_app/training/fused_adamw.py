"""AdamW's update as TensorFlow's fused training ops, for a step without a
`tf.distribute` strategy.

Keras' TensorFlow optimizer builds each variable's Adam update from ~12 small ops
inside a `distribution.extended.update` call, and its decoupled weight decay evaluates
the learning-rate schedule again for every variable. For MiniLM (105 variables) that
is ~2,600 of the train step's ~10,000 graph nodes, and measured on 2 cores the first
step of a fine-tuning run took 8.6–9.2 s with Keras' AdamW against 3.9–4.6 s with
plain SGD: tracing, optimising and instantiating the optimizer's part of the graph is
most of the time to the first step.

Here one `ResourceApplyAdam` op updates each variable with its two moments (the same
arithmetic as Keras' `Adam.update_step`: m += (g − m)(1 − β1), v += (g² − v)(1 − β2),
w −= α·m / (√v + ε) with α = lr·√(1 − β2ᵗ)/(1 − β1ᵗ)), the schedule and the bias
corrections are computed once per step, and the weight decay is one multiply and one
subtraction per decayed variable. Optimizer variables and checkpoints are unchanged.

Used only where it is the same computation as Keras': the TensorFlow backend, no
strategy (under `tf.distribute` each update must run per replica through
`extended.update`), and neither AMSGrad nor EMA. It reads Keras' private optimizer
state (`_momentums`, `_velocities`, `_get_variable_index`, `_distribution_strategy`,
`_use_weight_decay`); tests/training/optimizers_test.py checks the result against a
NumPy AdamW and that the fused ops are in the graph, so a Keras change fails there.
"""

import tensorflow as tf


def applies(optimizer):
    """Whether `optimizer`'s update can run fused in the current context."""
    return (not tf.distribute.has_strategy() and not optimizer.amsgrad and
            not optimizer.use_ema and
            optimizer._distribution_strategy is tf.distribute.get_strategy())


def _tf_variable(variable):
    return getattr(variable, "value", variable)  # a Keras variable's tf.Variable


def apply_weight_decay(optimizer, variables):
    """Decoupled weight decay, w −= lr·wd·w, on the variables `optimizer` decays."""
    if not optimizer.weight_decay:
        return
    decay = tf.cast(optimizer.learning_rate, tf.float32) * optimizer.weight_decay
    for variable in variables:
        if optimizer._use_weight_decay(variable):
            target = _tf_variable(variable)
            target.assign_sub(target * tf.cast(decay, target.dtype))


def update(optimizer, grads, variables, learning_rate):
    """Adam's update of every variable from its (clipped, summed) gradient."""
    step = tf.cast(optimizer.iterations + 1, tf.float32)
    beta_1_power = tf.pow(tf.constant(optimizer.beta_1, tf.float32), step)
    beta_2_power = tf.pow(tf.constant(optimizer.beta_2, tf.float32), step)
    learning_rate = tf.cast(learning_rate, tf.float32)
    constants = {}
    for grad, variable in zip(grads, variables):
        index = optimizer._get_variable_index(variable)
        target = _tf_variable(variable)
        dtype = target.dtype
        if dtype not in constants:
            constants[dtype] = [tf.cast(value, dtype) for value in (
                beta_1_power, beta_2_power, learning_rate, optimizer.beta_1,
                optimizer.beta_2, optimizer.epsilon)]
        b1_power, b2_power, lr, beta_1, beta_2, epsilon = constants[dtype]
        tf.raw_ops.ResourceApplyAdam(
            var=target.handle,
            m=_tf_variable(optimizer._momentums[index]).handle,
            v=_tf_variable(optimizer._velocities[index]).handle,
            beta1_power=b1_power, beta2_power=b2_power, lr=lr, beta1=beta_1,
            beta2=beta_2, epsilon=epsilon,
            grad=tf.cast(tf.convert_to_tensor(grad), dtype))
