"""`Dense`: Keras' dense layer, with a one-op product for sequences where TensorFlow
runs the graph without Grappler (`tf_tracing.untouched_graph_product`)."""

import keras

from keras_bert_app.tf_tracing import untouched_graph_product


# Keep the class name: Keras names a layer list's entries in a weights file after the
# snake-cased class name ("dense", as for keras.layers.Dense), so files written with
# either load into both (tests/layers/dense_test.py).
@keras.saving.register_keras_serializable(package="keras_bert_app")
class Dense(keras.layers.Dense):
    """`keras.layers.Dense` (same arguments, weights, weight names and results) whose
    product of a `[batch, seq, in]` input with its kernel is one `Einsum` op in a
    TensorFlow graph that runs without Grappler, instead of Keras' `tensordot`: a
    short CPU run's first step traces and runs ~15 fewer ops per layer. Elsewhere
    (other backends, eager calls, graphs Grappler optimises, LoRA, quantised
    kernels) it is Keras' layer unchanged.

    Example:
    >>> layer = Dense(384, name="query")
    >>> layer(keras.ops.ones([2, 16, 384])).shape
    (2, 16, 384)
    """

    def call(self, inputs, training=None):
        product = None
        if not self.lora_enabled and self.quantization_mode is None:
            product = untouched_graph_product(inputs, self.kernel)
        if product is None:
            return super().call(inputs, training=training)
        if self.bias is not None:
            product = keras.ops.add(product, self.bias)
        if self.activation is not None:
            product = self.activation(product)
        return product
