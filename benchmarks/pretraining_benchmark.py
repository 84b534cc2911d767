"""Pre-training speed on this machine, each framework in its own process: keras_bert_app's
BertPretrainer (MLM + NSP) vs keras-hub's BertMaskedLM (MLM only) vs Hugging Face's
BertForPreTraining (MLM + NSP, torch), each with and without XLA where it has it, next to
this CPU's TensorFlow matmul peak measured in the same run.

Same architecture (bert_small by default: L4 H512 A8, vocab 30,522), seq 128, batch 16,
20 masked positions, AdamW with weight decay and global-norm clipping, dropout 0.1.
Reports training sequences/s (full batches), the step's model FLOPs per second as a share
of the matmul peak, and where our step's time goes (the step's matmuls alone at their
own shapes; the step without dropout). Then the share of real (non-padding) tokens each
one's usual data path makes from the same real text, and real tokens/s.

    .venv/bin/python benchmarks/pretraining_benchmark.py [--preset bert_small] [--corpus F]
"""

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np

from harness import REPO, Runs, load, minilm_model_dir, seconds_per_step


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


def train_matmuls(config, batch_size, seq, predictions):
    """`(m, k, n, count)` of the matmuls of one training step: each forward matmul and
    its two backward ones (input and weight gradients). Attention's products run as one
    batched matmul of `heads * batch` `(m, k, n)` products."""
    tokens, hidden, heads = batch_size * seq, config.hidden_size, config.num_attention_heads
    head, masked = hidden // heads, batch_size * predictions
    forward = []
    for _ in range(config.num_hidden_layers):
        forward += [(tokens, hidden, hidden, 1)] * 4  # query, key, value, output
        forward += [(tokens, hidden, config.intermediate_size, 1),
                    (tokens, config.intermediate_size, hidden, 1),
                    (seq, head, seq, heads * batch_size),   # scores
                    (seq, seq, head, heads * batch_size)]   # context
    forward += [(batch_size, hidden, hidden, 1), (masked, hidden, hidden, 1),  # pooler, MLM
                (masked, hidden, config.vocab_size, 1), (batch_size, hidden, 2, 1)]
    return [shape for m, k, n, c in forward
            for shape in ((m, k, n, c), (m, n, k, c), (k, m, n, c))]


def step_flops(config, batch_size, seq, predictions):
    """Model FLOPs of one training step (2 per multiply-add of its matmuls)."""
    return sum(2.0 * m * k * n * c
               for m, k, n, c in train_matmuls(config, batch_size, seq, predictions))


# === Child processes: one framework or measurement each ===

def _config(spec, dropout=True):
    import keras_bert_app as kba

    config = kba.BertConfig.from_preset(spec["preset"])
    if not dropout:
        config = kba.BertConfig(**{**config.to_dict(), "hidden_dropout_prob": 0.0,
                                   "attention_probs_dropout_prob": 0.0})
    return config


def ours(spec):
    import keras_bert_app as kba
    from keras_bert_app import names

    config = _config(spec, spec.get("dropout", True))
    data = batch(config, spec["batch"], spec["seq"], spec["predictions"])
    pretrainer = kba.models.BertPretrainer(kba.models.BertEncoder(config))
    pretrainer.compile(optimizer=kba.training.create_optimizer(1e-4, 10_000, 100),
                       jit_compile=spec["jit"])
    x = {names.INPUT_WORD_IDS: data["ids"], names.INPUT_MASK: np.ones_like(data["ids"]),
         names.INPUT_TYPE_IDS: data["types"], names.MASKED_LM_POSITIONS: data["positions"]}
    y = {names.MASKED_LM_IDS: data["labels"],
         names.MASKED_LM_WEIGHTS: np.ones(data["labels"].shape, "float32"),
         names.NEXT_SENTENCE_LABELS: data["nsp"]}
    return lambda: pretrainer.train_on_batch(x, y)


def keras_hub(spec):
    import keras
    import keras_hub

    config = _config(spec)
    data = batch(config, spec["batch"], spec["seq"], spec["predictions"])
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
                  jit_compile=spec["jit"])
    x = {"token_ids": data["ids"], "segment_ids": data["types"],
         "padding_mask": np.ones_like(data["ids"]), "mask_positions": data["positions"]}
    weights = np.ones(data["labels"].shape, "float32")
    return lambda: model.train_on_batch(x, data["labels"], sample_weight=weights)


def hugging_face(spec):
    import torch
    import transformers

    torch.set_num_threads(os.cpu_count())
    config = _config(spec)
    data = batch(config, spec["batch"], spec["seq"], spec["predictions"])
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
        model(**inputs).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return step


def matmul_peak(spec):
    """TensorFlow float32 GEMM at 2048^3, the CPU's practical peak."""
    import tensorflow as tf

    a = tf.random.normal((2048, 2048))
    b = tf.random.normal((2048, 2048))
    product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    return lambda: product().numpy()


def step_matmuls(spec):
    """The matmuls of one training step at their own shapes (`train_matmuls`), and
    nothing else: what our step would take if all else were free."""
    import tensorflow as tf

    operands = [(tf.random.normal((c, m, k) if c > 1 else (m, k)),
                 tf.random.normal((c, k, n) if c > 1 else (k, n)))
                for m, k, n, c in train_matmuls(_config(spec), spec["batch"], spec["seq"],
                                                spec["predictions"])]

    @tf.function(jit_compile=spec["jit"])
    def run():
        # Summed so that no product is pruned as unused.
        return tf.add_n([tf.reduce_sum(tf.matmul(a, b)) for a, b in operands])
    return lambda: run().numpy()


ROLES = {"ours": ours, "keras-hub": keras_hub, "hf": hugging_face,
         "matmul_peak": matmul_peak, "step_matmuls": step_matmuls}


def child(role, spec):
    step = ROLES[role](spec)
    seconds = seconds_per_step(step, spec["warmup"], spec["steps"])
    with open(spec["answer"], "w") as f:
        json.dump({"seconds_per_step": seconds}, f)


def fill_ratios(corpus, vocab_file, seq, lines):
    """Real-token share of a batch on the same text, as each one's data path makes it.

    keras_bert_app: documents of 100 lines packed to full sequences (Google's
    algorithm, here the in-graph dynamic path). keras-hub and Hugging Face: one example
    per speech (the blank-line separated paragraphs), padded to `seq` — how their
    MLM preprocessors and `DataCollatorForLanguageModeling` are fed line by line.
    """
    import tempfile

    import keras
    import keras_hub
    import tensorflow as tf
    import tokenizers

    import keras_bert_app as kba
    from keras_bert_app import names

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


MEASUREMENTS = [
    # (role, title, spec overrides)
    ("matmul_peak", "TensorFlow float32 matmul 2048^3", {"jit": False, "steps": 20}),
    ("ours", "keras_bert_app BertPretrainer (MLM+NSP)", {"jit": False}),
    ("ours", "keras_bert_app BertPretrainer (MLM+NSP)", {"jit": True}),
    ("keras-hub", "keras-hub BertMaskedLM (MLM)", {"jit": False}),
    ("keras-hub", "keras-hub BertMaskedLM (MLM)", {"jit": True}),
    ("hf", "HF BertForPreTraining (MLM+NSP, torch)", {"jit": False}),
    ("ours", "  ours without dropout", {"jit": True, "dropout": False}),
    ("step_matmuls", "  the step's matmuls alone (TF)", {"jit": False}),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=sorted(ROLES), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--preset", default="bert_small")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--predictions", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quiet_wait", type=float, default=120,
                        help="Seconds to wait for a quiet machine before each process.")
    parser.add_argument("--corpus", default=os.path.join(
        REPO, "..", "shared", "data", "corpus", "tinyshakespeare.txt"))
    parser.add_argument("--lines", type=int, default=8000)
    args = parser.parse_args()
    if args.role:
        return child(args.role, json.loads(args.spec))

    import keras_bert_app as kba

    config = kba.BertConfig.from_preset(args.preset)
    flops = step_flops(config, args.batch, args.seq, args.predictions)
    print(f"{args.preset}, seq {args.seq}, batch {args.batch}, {args.predictions} "
          f"predictions; {os.cpu_count()} CPUs, {platform.processor() or platform.machine()};"
          f" {flops / 1e9:.1f} GFLOP of matmuls per training step")
    runs = Runs(args.quiet_wait, os.path.abspath(__file__))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (role, title, overrides) in enumerate(MEASUREMENTS):
            spec = dict(preset=args.preset, seq=args.seq, batch=args.batch,
                        predictions=args.predictions, steps=args.steps,
                        warmup=args.warmup, answer=os.path.join(tmp, f"{i}.json"))
            spec.update(overrides)
            answer, wall = runs.child(role, spec, os.path.join(tmp, f"{i}.log"))
            noise = runs.noise[f"{i}.log"]["other_processes_cores"]
            rows.append((role, title, spec, answer["seconds_per_step"], wall, noise))
            print(f"  measured {title} (jit_compile={spec['jit']}): "
                  f"{answer['seconds_per_step']:.3f} s, process {wall:.0f} s, "
                  f"others {noise:.2f} cores", flush=True)

    peak = 2.0 * 2048 ** 3 / rows[0][3]
    best = {}
    for role, _, spec, seconds, _, _ in rows[1:]:
        if spec.get("dropout", True) and role in ("ours", "keras-hub", "hf"):
            best[role] = min(best.get(role, seconds), seconds)
    print(f"\nmatmul peak (TensorFlow, float32, 2048^3): {peak / 1e9:.1f} GFLOP/s")
    print(f"{'':<44}{'XLA':>5}{'s/step':>8}{'seq/s':>8}{'GFLOP/s':>9}{'of peak':>9}"
          f"{'vs keras-hub':>14}{'vs HF':>8}")
    for role, title, spec, seconds, _, _ in rows[1:]:
        ratios = (f"{best['keras-hub'] / seconds:>13.2f}x{best['hf'] / seconds:>7.2f}x"
                  if role != "step_matmuls" else "")
        print(f"  {title:<42}{'on' if spec['jit'] else 'off':>5}{seconds:>8.3f}"
              f"{args.batch / seconds:>8.2f}{flops / seconds / 1e9:>9.1f}"
              f"{flops / seconds / peak:>9.0%}{ratios}")
    print(f"\n  best settings, seq/s ratios: ours {best['keras-hub'] / best['ours']:.2f}x "
          f"keras-hub, {best['hf'] / best['ours']:.2f}x Hugging Face; load now {load()}")

    vocab = minilm_model_dir()
    if vocab is None or not os.path.isfile(args.corpus):
        print("(no real text or vocabulary: skipping the non-padding figures)")
        return
    fill = fill_ratios(args.corpus, os.path.join(vocab, "vocab.txt"), args.seq, args.lines)
    print(f"\nreal-token share of a batch from the same text: " + ", ".join(
        f"{key} {share:.0%}" for key, share in fill.items()) + "; best real tokens/s: " +
        ", ".join(f"{key} {args.batch / best[key] * fill[key] * args.seq:.0f}"
                  for key in ("ours", "keras-hub", "hf")))


if __name__ == "__main__":
    main()
