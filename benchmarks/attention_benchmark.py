"""Self-attention on this machine: the fused path (`keras.ops.dot_product_attention`,
what `BertSelfAttention` runs whenever attention dropout is inactive) vs the explicit
path (einsum, float32 softmax, dropout, einsum: the only path before, and the one
training with attention dropout takes), in one process, passes interleaved.

Inference (forward) and a training step's forward + backward with attention dropout 0,
for BERT-small and BERT-base shapes, with and without XLA.

    .venv/bin/python benchmarks/attention_benchmark.py [--passes 7]
"""

import argparse
import os
import platform
import time

import keras
import numpy as np
import tensorflow as tf

from keras_bert_app.layers import attention
from keras_bert_app.layers.attention import BertSelfAttention

from harness import load

SHAPES = [  # (name, batch, seq, heads, head_size)
    ("bert_small seq 128", 16, 128, 8, 64),
    ("bert_base seq 128", 16, 128, 12, 64),
    ("bert_base seq 512", 4, 512, 12, 64),
]


def layer_pair(heads, head_size):
    """Two layers with the same weights: one fused, one forced onto the explicit path
    (dropout > 0 selects it in training; its rate 0 makes it compute the same)."""
    fused = BertSelfAttention(heads, head_size)
    explicit = BertSelfAttention(heads, head_size, dropout=0.5)
    explicit.dropout_layer.rate = 0.0
    return fused, explicit


# The layer never takes the fused path on TensorFlow (this benchmark's figures are
# why); measure it anyway, wherever attention dropout is inactive.
attention._fused_path_helps = lambda compute_dtype: True


def functions(layer, x, mask, jit):
    def forward():
        return layer(x, mask, training=True)

    def train():
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer(x, mask, training=True)
            loss = tf.reduce_sum(out * out)
        return tape.gradient(loss, layer.trainable_variables + [x])

    return (tf.function(forward, jit_compile=jit), tf.function(train, jit_compile=jit))


def timed(fn, repeats):
    start = time.perf_counter()
    for _ in range(repeats):
        tf.nest.map_structure(lambda t: t.numpy(), fn())
    return (time.perf_counter() - start) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"tensorflow {tf.__version__}, keras {keras.__version__}; ms per call, median "
          f"of {args.passes} interleaved passes of {args.repeats} calls; load {load()}")
    print(f"{'':<22}{'XLA':>5}{'':>8}{'fused':>9}{'explicit':>10}{'fused/explicit':>16}")
    rng = np.random.default_rng(0)
    for name, batch, seq, heads, size in SHAPES:
        x = tf.constant(rng.normal(size=(batch, seq, heads * size)).astype("float32"))
        lengths = rng.integers(seq // 2, seq + 1, batch)
        mask = tf.constant((np.arange(seq)[None] < lengths[:, None]).astype("int32"))
        fused, explicit = layer_pair(heads, size)
        fused(x, mask), explicit(x, mask)
        explicit.set_weights(fused.get_weights())
        for jit in (False, True):
            pairs = list(zip(functions(fused, x, mask, jit),
                             functions(explicit, x, mask, jit)))
            for kind, (a, b) in zip(("forward", "fwd+bwd"), pairs):
                timed(a, 2), timed(b, 2)  # trace, compile, warm up
                times = np.array([(timed(a, args.repeats), timed(b, args.repeats))
                                  for _ in range(args.passes)])
                fa, fb = np.median(times, axis=0) * 1e3
                print(f"  {name:<20}{'on' if jit else 'off':>5}{kind:>8}{fa:>9.2f}"
                      f"{fb:>10.2f}{fa / fb:>15.2f}x", flush=True)
    print(f"load at the end {load()}")


if __name__ == "__main__":
    main()
