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
