"""Encoder speed: keras_bert_app's BertEncoder vs keras-hub's BertBackbone, one run.

Same architecture (bert_small by default: L4 H512 A8), same batch of random tokens,
same backend and XLA setting. Reports sequences/s for inference (forward pass) and for
a training step of a 2-class classifier on top (forward, backward, Adam update).

    .venv/bin/python benchmarks/encoder_benchmark.py --preset bert_small --seq 128 --batch 16
"""

import platform

import keras
import keras_hub
import numpy as np

import keras_bert_app as kba

from harness import model_benchmark_parser, seconds_per_step


def ours(config, jit):
    encoder = kba.models.BertEncoder(config)
    classifier = kba.models.BertClassifier(encoder, num_classes=2)
    classifier.compile(keras.optimizers.Adam(1e-4), jit_compile=jit)
    encoder.compile(jit_compile=jit)
    return encoder, classifier, lambda x: x


def keras_hub_model(config, jit):
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=config.vocab_size, num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads, hidden_dim=config.hidden_size,
        intermediate_dim=config.intermediate_size, dropout=config.hidden_dropout_prob,
        max_sequence_length=config.max_position_embeddings)
    classifier = keras_hub.models.BertTextClassifier(backbone, num_classes=2,
                                                     preprocessor=None)
    classifier.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=jit)
    backbone.compile(jit_compile=jit)

    def inputs(x):
        return {"token_ids": x["input_word_ids"], "padding_mask": x["input_mask"],
                "segment_ids": x["input_type_ids"]}
    return backbone, classifier, inputs


def main():
    args = model_benchmark_parser(__doc__).parse_args()

    config = kba.BertConfig.from_preset(args.preset)
    rng = np.random.default_rng(0)
    x = {"input_word_ids": rng.integers(1, config.vocab_size, (args.batch, args.seq)).astype("int32"),
         "input_mask": np.ones((args.batch, args.seq), "int32"),
         "input_type_ids": np.zeros((args.batch, args.seq), "int32")}
    y = rng.integers(0, 2, (args.batch,)).astype("int32")

    print(f"{args.preset}, seq {args.seq}, batch {args.batch}, backend "
          f"{keras.backend.backend()}, jit_compile={args.jit_compile}, "
          f"{platform.processor() or platform.machine()}")
    print(f"{'model':<34}{'inference seq/s':>18}{'train step seq/s':>18}")
    for name, build in (("keras_bert_app BertEncoder", ours),
                        ("keras-hub BertBackbone", keras_hub_model)):
        encoder, classifier, adapt = build(config, args.jit_compile)
        inputs = adapt(x)
        infer = seconds_per_step(lambda: encoder.predict_on_batch(inputs), args.warmup,
                                 args.steps, np.mean)
        train = seconds_per_step(lambda: classifier.train_on_batch(inputs, y),
                                 args.warmup, args.steps, np.mean)
        print(f"{name:<34}{args.batch / infer:>18.1f}{args.batch / train:>18.1f}")


if __name__ == "__main__":
    main()
