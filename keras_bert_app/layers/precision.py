"""Dtype rules for mixed precision.

Under a mixed policy (`mixed_bfloat16`, `mixed_float16`) the matmuls run in the
half-precision compute dtype, while LayerNorm, the attention softmax and returned logits
stay in float32: their reductions lose too much in 8-10 mantissa bits.
"""

import keras


def float32_if_mixed(dtype_policy):
    """The policy for numerically sensitive layers: float32 when `dtype_policy` is mixed."""
    policy = keras.dtype_policies.get(dtype_policy)
    if policy.compute_dtype != policy.variable_dtype:
        return "float32"
    return policy


def keep_model_dtype_policy(model, dtype):
    """Gives a functional `model` the dtype policy it was built with.

    Keras 3.15's functional `Model.__init__` drops its `dtype` argument, leaving the
    model with the global policy. `compile` reads the model's policy to decide loss
    scaling: a `mixed_float16` encoder built while the global policy is float32 would
    train without a `LossScaleOptimizer`, its small float16 gradients flushed to zero.
    """
    if dtype is not None:
        model.dtype_policy = dtype
