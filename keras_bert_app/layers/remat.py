"""Rematerialisation of a layer's call with the same dropout masks in the recompute.

Rematerialisation (gradient checkpointing) keeps only a layer's inputs for the
backward pass and runs its forward computation again there, so the activations
inside the layer never wait in memory for the backward pass.

Wrapping the block's computation in Keras' own `keras.remat` (or `keras.RematScope`,
keras 3.15.1) is not enough, because the recompute calls the `Dropout` sublayers
again and they draw their seeds from their `SeedGenerator`s, whose state the forward
pass has already advanced:

- on TensorFlow (`tf.recompute_grad`) the recompute drops other units than the
  forward pass did, and the gradients are wrong (tests/models/remat_test.py: 380 of
  the 2,048 entries of a kernel's gradient differ, e.g. 0.02334 against 0.02367);
- on JAX (`jax.checkpoint`) the seed state written inside the checkpointed function
  leaks a tracer (`UnexpectedTracerError`);
- on torch it happens to be right: an unseeded `Dropout` uses torch's global
  generator, whose state `torch.utils.checkpoint` restores for the recompute.

`RematScope` adds, on TensorFlow, `tf.recompute_grad` refusing the `training` keyword
inside a `tf.function` ("The custom_gradient decorator currently supports keywords
arguments only when eager execution is enabled").

`rematerialized_call` runs the layer *statelessly* instead, the way Keras' JAX trainer
runs a whole model: every variable of the layer is replaced by an explicit value
inside a `keras.StatelessScope`. The seed states are read once, before the forward
pass, so the recompute sees the very same values and draws the same masks; their
advance is written back to the variables once, outside the recomputed function.
"""

import keras
from keras import ops

# Not exported by Keras. Under mixed precision a layer's `call` runs inside an
# autocast scope that reads float variables in the compute dtype (bfloat16). The
# values handed to the stateless scope must be the float32 originals: a float32
# sublayer would otherwise see its (autocast) weights rounded to bfloat16. Each
# sublayer still casts as it does without remat.
from keras.src.backend import AutocastScope


def rematerialized_call(layer, fn, *inputs):
    """`fn(*inputs)`, recomputed in the backward pass instead of keeping its
    intermediate tensors.

    Call it from `layer.call`. `fn` may call any of `layer`'s sublayers, and must take
    everything it does not differentiate (masks, `training` as a plain bool) from its
    closure: `inputs` are the tensors gradients flow to, and `fn` returns one tensor.
    Dropout in `fn` draws the same mask in the forward pass and in the recompute,
    so the gradients equal those without rematerialisation (to float rounding).

    Args:
        layer: the built layer whose variables `fn` reads.
        fn: the computation, `fn(*inputs) -> tensor`.
        *inputs: the floating-point tensors `fn` is differentiated with respect to.

    Returns `fn(*inputs)`.
    """
    variables = layer.variables
    # Written back after the call: the dropouts' seed states, the only state a layer
    # of BERT changes when called (integers; float state such as BatchNormalization's
    # moving statistics would not be written back).
    seeds = [v for v in variables if not v.trainable and "float" not in v.dtype]
    with AutocastScope(None):
        # Weights: read as they are (on TensorFlow a read of the variable, which the
        # gradient tape follows; on JAX the traced value; on torch the parameter).
        # Seed states: a copy, because torch's `assign` writes in place and the
        # recompute must still see the values from before the call.
        values = [ops.copy(ops.convert_to_tensor(v.value)) if any(v is s for s in seeds)
                  else ops.convert_to_tensor(v.value) for v in variables]
    trainable = [i for i, v in enumerate(variables) if v.trainable]
    num_inputs = len(inputs)

    def stateless_fn(*args):
        # args: *inputs, then the trainable values. Passed as arguments (not closed
        # over) because tf.recompute_grad differentiates only its arguments.
        mapping = list(values)
        for i, value in zip(trainable, args[num_inputs:]):
            mapping[i] = value
        with keras.StatelessScope(state_mapping=list(zip(variables, mapping))) as scope:
            output = fn(*args[:num_inputs])
        # The seed states as `fn` left them (advanced once per dropout draw).
        return (output, *[scope.get_current_value(v) for v in seeds])

    output, *new_states = keras.remat(stateless_fn)(
        *inputs, *[values[i] for i in trainable])
    for variable, value in zip(seeds, new_states):
        variable.assign(value)
    return output
