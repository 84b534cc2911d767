"""Pre-training speed: keras_bert_app's BertPretrainer (MLM + NSP) vs keras-hub's
BertMaskedLM (MLM only) vs Hugging Face's BertForPreTraining (MLM + NSP, torch), one run.

Same architecture (bert_small by default: L4 H512 A8, vocab 30,522), seq 128, batch 16,
20 masked positions, AdamW. Reports training sequences/s (full batches), then the share
of real (non-padding) tokens each one's usual data path produces from the same real
text, and the resulting non-padding tokens/s.

    .venv/bin/python benchmarks/pretraining_benchmark.py [--jit_compile] [--corpus FILE]
"""

import os
import platform

import keras
import numpy as np

import keras_bert_app as kba
from keras_bert_app import names

from harness import minilm_model_dir, model_benchmark_parser, seconds_per_step

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def batch(config, size, seq, predictions, seed=0):
    rng = np.random.default_rng(seed)
    positions = np.sort(np.stack([rng.choice(np.arange(1, seq - 1), predictions, False)
                                  for _ in range(size)]), 1).astype("int32")
    return {
        "ids": rng.integers(1000, config.vocab_size, (size, seq)).astype("int32"),
        "types": (np.arange(seq)[None] >= seq // 2).astype("int32").repeat(size, 0),
        "positions": positions,
        "labels": rng.integers(1000, config.vocab_size, (size, predictions)).astype("int32"),
        "nsp": rng.integers(0, 2, (size, 1)).astype("int32"),
    }


def ours(config, data, jit):
    pretrainer = kba.models.BertPretrainer(kba.models.BertEncoder(config))
    pretrainer.compile(optimizer=kba.training.create_optimizer(1e-4, 10_000, 100),
                       jit_compile=jit)
    x = {names.INPUT_WORD_IDS: data["ids"], names.INPUT_MASK: np.ones_like(data["ids"]),
         names.INPUT_TYPE_IDS: data["types"], names.MASKED_LM_POSITIONS: data["positions"]}
    y = {names.MASKED_LM_IDS: data["labels"],
         names.MASKED_LM_WEIGHTS: np.ones(data["labels"].shape, "float32"),
         names.NEXT_SENTENCE_LABELS: data["nsp"]}
    return lambda: pretrainer.train_on_batch(x, y)


def keras_hub_step(config, data, jit):
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=config.vocab_size, num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads, hidden_dim=config.hidden_size,
        intermediate_dim=config.intermediate_size, dropout=config.hidden_dropout_prob,
        max_sequence_length=config.max_position_embeddings)
    model = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
    model.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.01,
                                                   global_clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=[keras.metrics.SparseCategoricalAccuracy()],
                  jit_compile=jit)
    x = {"token_ids": data["ids"], "segment_ids": data["types"],
         "padding_mask": np.ones_like(data["ids"]), "mask_positions": data["positions"]}
    weights = np.ones(data["labels"].shape, "float32")
    return lambda: model.train_on_batch(x, data["labels"], sample_weight=weights)


def hugging_face_step(config, data):
    import torch
    import transformers

    torch.set_num_threads(os.cpu_count())
    hf_config = transformers.BertConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size, hidden_act="gelu",
        max_position_embeddings=config.max_position_embeddings)
    model = transformers.BertForPreTraining(hf_config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    labels = np.full(data["ids"].shape, -100, "int64")
    np.put_along_axis(labels, data["positions"], data["labels"], 1)
    inputs = {"input_ids": torch.tensor(data["ids"], dtype=torch.long),
              "token_type_ids": torch.tensor(data["types"], dtype=torch.long),
              "attention_mask": torch.ones(data["ids"].shape, dtype=torch.long),
              "labels": torch.tensor(labels),
              "next_sentence_label": torch.tensor(data["nsp"][:, 0], dtype=torch.long)}

    def step():
        optimizer.zero_grad()
        loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return step


def fill_ratios(corpus, vocab_file, seq, lines):
    """Real-token share of a batch on the same text, as each one's data path makes it.

    keras_bert_app: documents of 100 lines packed to full sequences (Google's
    algorithm, here the in-graph dynamic path). keras-hub and Hugging Face: one example
    per speech (the blank-line separated paragraphs), padded to `seq` — how their
    MLM preprocessors and `DataCollatorForLanguageModeling` are fed line by line.
    """
    import tempfile

    import keras_hub
    import tensorflow as tf
    import tokenizers

    with open(corpus, encoding="utf-8") as f:
        text = f.read()
    speeches = [p.strip() for p in text.split("\n\n") if p.strip()][:lines // 4]
    kept = [line for line in text.splitlines() if line.strip()][:lines]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "corpus.txt")
        with open(path, "w", encoding="utf-8") as f:
            for start in range(0, len(kept), 100):
                f.write("\n".join(kept[start:start + 100]) + "\n\n")
        dataset = kba.data.raw_text_pretraining_dataset(path, vocab_file, 64,
                                                        max_seq_length=seq, seed=0)
        ours_fill = float(np.mean([f[names.INPUT_MASK].numpy().mean()
                                   for f, _ in dataset.take(20)]))
    preprocessor = keras_hub.models.BertMaskedLMPreprocessor(
        keras_hub.models.BertTokenizer(vocabulary=vocab_file, lowercase=True),
        sequence_length=seq)
    x, _, _ = preprocessor(tf.constant(speeches))
    hub_fill = float(np.mean(keras.ops.convert_to_numpy(x["padding_mask"])))
    tokenizer = tokenizers.BertWordPieceTokenizer(vocab_file, lowercase=True)
    tokenizer.enable_truncation(seq)
    lengths = [len(e.ids) for e in tokenizer.encode_batch(speeches)]
    hf_fill = float(np.mean(lengths)) / seq
    return {"ours": ours_fill, "keras-hub": hub_fill, "hf": hf_fill}


def main():
    parser = model_benchmark_parser(__doc__)
    parser.add_argument("--predictions", type=int, default=20)
    parser.add_argument("--corpus", default=os.path.join(
        REPO, "..", "shared", "data", "corpus", "tinyshakespeare.txt"))
    parser.add_argument("--lines", type=int, default=8000)
    args = parser.parse_args()

    config = kba.BertConfig.from_preset(args.preset)
    data = batch(config, args.batch, args.seq, args.predictions)
    print(f"{args.preset}, seq {args.seq}, batch {args.batch}, {args.predictions} "
          f"predictions, backend {keras.backend.backend()}, jit_compile="
          f"{args.jit_compile}, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}")
    runs = [("keras_bert_app BertPretrainer (MLM+NSP)", "ours",
             lambda: ours(config, data, args.jit_compile)),
            ("keras-hub BertMaskedLM (MLM)", "keras-hub",
             lambda: keras_hub_step(config, data, args.jit_compile)),
            ("HF BertForPreTraining (MLM+NSP, torch)", "hf",
             lambda: hugging_face_step(config, data))]
    speed = {}
    for title, key, build in runs:
        seconds = seconds_per_step(build(), args.warmup, args.steps)
        speed[key] = args.batch / seconds
        print(f"  {title:<44}{speed[key]:>8.2f} seq/s")

    vocab = minilm_model_dir()
    if vocab is None or not os.path.isfile(args.corpus):
        print("(no real text or vocabulary: skipping the non-padding figures)")
        return
    fill = fill_ratios(args.corpus, os.path.join(vocab, "vocab.txt"), args.seq, args.lines)
    print(f"\n{'':<46}{'seq/s':>8}{'real tokens':>13}{'real tokens/s':>15}"
          f"{'vs keras-hub':>14}{'vs HF':>8}")
    tokens = {k: speed[k] * fill[k] * args.seq for k in speed}
    for title, key, _ in runs:
        print(f"  {title:<44}{speed[key]:>8.2f}{fill[key]:>12.0%}{tokens[key]:>15.0f}"
              f"{tokens[key] / tokens['keras-hub']:>13.2f}x{tokens[key] / tokens['hf']:>7.2f}x")
    print(f"\n  seq/s ratios: {speed['ours'] / speed['keras-hub']:.2f}x keras-hub, "
          f"{speed['ours'] / speed['hf']:.2f}x Hugging Face")


if __name__ == "__main__":
    main()
