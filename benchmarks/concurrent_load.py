"""Concurrent load on the classifier and SQuAD exports, as a model server puts it on
them (issue 15 §5).

    python benchmarks/concurrent_load.py --threads=1,2,4,8 --processes=2,4 \
        --seconds=120 --output=concurrent_load.json

Exports a classifier and a SQuAD model, by default from random models built here
(`--scale tiny`: the tests' 2-layer, 32-wide BERT; `small`: BERT-small, L4 H512, at
serving lengths 128 and 384) and written once into `--work_dir`, or loads real ones
(`--classifier_dir`, `--squad_dir`: SavedModel directories). Then, for each export:

1. reference answers: each request of a fixed set (`--requests`, batch sizes cycling
   1..16; varied texts from demo_data/, empty and non-Latin ones, SQuAD contexts up to
   several thousand characters) called once, one at a time, in this process;
2. `--threads` N: one serving process with N threads calling `serving_default` for
   `--seconds`, each thread starting at another request of the set;
3. `--processes` P: P serving processes at once, one thread each.

A serving process imports TensorFlow and the TF Text op libraries TF Serving 2.19
links, nothing else (Keras and our package are made unimportable, as in
tests/export/tf_only_check.py). It warms up under the same load (every thread
through the whole set once, and `--warmup_seconds` at least), then all processes of
a configuration start the timed window together. Every answer, warm-up included, is compared with the
reference: strings, integers and booleans bitwise, floats within 1e-6 (relative above
1); an exception is an error, a difference a mismatch. Resident memory (VmRSS) is
sampled every second of the timed window: start, end and the least-squares slope
(MB/min; over processes, their sums). Also: requests/s, examples/s, latency p50/p99.

Prints a markdown table; `--output` gets it as JSON with the first errors and
mismatches. Exit status 1 unless every configuration had zero errors and mismatches.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# Neither imports TensorFlow or Keras: a serving child imports this module first.
from benchmarks.harness import busy_seconds, versions, wait_quiet  # noqa: E402
from tests.export.tf_only_check import (block_modules, register_tf_text_ops,  # noqa: E402
                                        decode, encode)

FLOAT_TOLERANCE = 1e-6
MAX_BATCH = 16
KEPT_EXAMPLES = 5  # errors and mismatches kept per configuration and export
# Serving lengths of the built models: (classifier, SQuAD window, SQuAD stride).
SCALES = {"tiny": (24, 32, 8), "small": (128, 384, 128)}
SPECIAL_TEXTS = ["", "Héllo wörld — naïve café!", "你好，世界", "🙂 emoji 🙃",
                 "ROMEO: But soft, what light through yonder window breaks?"]


# --------------------------------------------------------------- exports, requests


def build_exports(root, scale):
    """A random classifier and SQuAD model at `scale`, exported under `root` (once:
    a kept directory is reused). {name: SavedModel directory}."""
    paths = {name: os.path.join(root, f"{name}_{scale}", "1")
             for name in ("classifier", "squad")}
    if all(os.path.isfile(os.path.join(p, "saved_model.pb")) for p in paths.values()):
        return paths
    import keras

    from keras_bert_app import names
    from keras_bert_app.export import export_classifier, export_squad
    from keras_bert_app.models import BertClassifier, BertEncoder, BertSpanLabeler
    from keras_bert_app.task_config import TaskConfig
    from keras_bert_app.text.preprocessing_layer import BertTextPreprocessor
    from keras_bert_app.text.tokenizer import BertTokenizer
    from tests.helpers import SHAKESPEARE_VOCAB, tiny_config

    seq, squad_seq, stride = SCALES[scale]
    size = {} if scale == "tiny" else dict(hidden_size=512, num_hidden_layers=4,
                                           num_attention_heads=8, intermediate_size=2048)
    # Weights at 50x the usual scale (as the export tests): answers differ between
    # texts, so an answer delivered to the wrong request is a mismatch.
    config = tiny_config(vocab_size=927, initializer_range=1.0,
                         max_position_embeddings=max(64, squad_seq), **size)
    keras.utils.set_random_seed(1)
    classifier = BertClassifier(BertEncoder(config), num_classes=3,
                                preprocessor=BertTextPreprocessor(SHAKESPEARE_VOCAB,
                                                                  sequence_length=seq))
    export_classifier(os.path.dirname(paths["classifier"]), classifier=classifier,
                      task_config=TaskConfig.for_classifier(
                          classifier, ["negative", "neutral", "positive"], seq,
                          [names.TEXT_A]))
    task = TaskConfig(task=names.SQUAD_TASK, heads=(names.SPAN_HEAD,),
                      max_seq_length=squad_seq,
                      settings=dict(doc_stride=stride, max_query_length=squad_seq // 4,
                                    max_answer_length=30, n_best_size=20,
                                    version_2_with_negative=True,
                                    null_score_diff_threshold=0.0))
    export_squad(os.path.dirname(paths["squad"]), span_labeler=BertSpanLabeler(
        BertEncoder(config)), tokenizer=BertTokenizer(SHAKESPEARE_VOCAB, lower_case=True),
        task_config=task)
    return paths


def demo_texts():
    """(SST-2 phrases, Shakespeare speeches) from demo_data/."""
    with open(os.path.join(REPO, "demo_data", "sst2_sample.tsv"), encoding="utf-8") as f:
        phrases = [row["sentence"].strip() for row in csv.DictReader(
            f, delimiter="\t", quoting=csv.QUOTE_NONE)][:500]
    with open(os.path.join(REPO, "demo_data", "shakespeare.txt"), encoding="utf-8") as f:
        speeches = [s.strip() for s in f.read().split("\n\n") if s.strip()][:1000]
    return phrases, speeches


def request_set(input_names, count):
    """`count` requests ({input: [strings]}) for a signature taking `input_names`:
    batch sizes 1..16 in turn, each row different; SQuAD (question, context) rows
    have contexts of 1 to 40 speeches (every fourth long: several thousand
    characters)."""
    from keras_bert_app.names import CONTEXT, QUESTION

    phrases, speeches = demo_texts()
    texts = SPECIAL_TEXTS + phrases + speeches[:200]
    squad = QUESTION in input_names
    requests, row = [], 0
    for r in range(count):
        batch = {name: [] for name in input_names}
        for _ in range(r % MAX_BATCH + 1):
            if squad:
                first = (row * 7) % (len(speeches) - 40)
                length = 40 if row % 4 == 3 else 1 + row % 3
                batch[QUESTION].append(speeches[first + length // 2].split("\n")[-1])
                batch[CONTEXT].append("\n\n".join(speeches[first:first + length]))
            else:
                for k, name in enumerate(input_names):  # a pair: two different texts
                    batch[name].append(texts[(row + 37 * k) % len(texts)])
            row += 1
        requests.append(batch)
    return requests


def call(signature, request):
    """One request through a loaded signature: {output: NumPy array}."""
    import tensorflow as tf

    tensors = {k: tf.constant(v, tf.string, shape=[len(v)]) for k, v in request.items()}
    return {k: v.numpy() for k, v in signature(**tensors).items()}


def difference(expected, actual):
    """None when `actual` answers as `expected` (strings, integers, booleans bitwise;
    floats within FLOAT_TOLERANCE, relative above 1); else what differs."""
    if sorted(expected) != sorted(actual):
        return f"outputs {sorted(actual)}, expected {sorted(expected)}"
    for name, want in expected.items():
        got = np.asarray(actual[name])
        if got.shape != want.shape or got.dtype != want.dtype:
            return (f"{name}: {got.dtype} {list(got.shape)}, expected {want.dtype} "
                    f"{list(want.shape)}")
        if want.dtype.kind == "f":
            with np.errstate(invalid="ignore", over="ignore"):
                close = np.abs(got - want) <= FLOAT_TOLERANCE * np.maximum(1, np.abs(want))
            same = (got == want) | (np.isnan(got) & np.isnan(want)) | (
                close & np.isfinite(got) & np.isfinite(want))  # inf - inf is no match
        else:
            same = np.asarray(got == want)
        if not np.all(same):
            row = tuple(int(i) for i in np.argwhere(~same)[0][:1])  # () if 0-d
            return f"{name}{list(row)}: {got[row]!r}, expected {want[row]!r}"
    return None


# ------------------------------------------------------------------ the load itself


def vm_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("/proc/self/status has no VmRSS line")


def memory_figures(samples):
    """(seconds, MB) samples → start, end and least-squares slope in MB/min."""
    t, mb = np.array(samples, dtype=float).T
    slope = float(np.polyfit(t / 60.0, mb, 1)[0]) if len(set(t)) > 1 else 0.0
    return {"rss_start_mb": round(mb[0], 1), "rss_end_mb": round(mb[-1], 1),
            "rss_slope_mb_per_min": round(slope, 3), "rss_samples": len(samples)}


def run_load(function, requests, references, threads, seconds, rounds=0):
    """`threads` threads each calling `function(request)` on the requests in turn
    (thread k starts at request k·len/threads) for `seconds`, and at least `rounds`
    times through the set, checking every answer with `difference`. Returns counts,
    latencies (s), the first errors and mismatches."""
    deadline = time.perf_counter() + seconds
    stats = [{"requests": 0, "examples": 0, "errors": 0, "mismatches": 0,
              "latencies": [], "examples_kept": []} for _ in range(threads)]

    def worker(k):
        mine, i = stats[k], k * len(requests) // threads
        while time.perf_counter() < deadline or mine["requests"] < rounds * len(requests):
            index = i % len(requests)
            start = time.perf_counter()
            try:
                answer = function(requests[index])
            except Exception as error:  # noqa: BLE001  (every failure is counted)
                answer = error
            mine["latencies"].append(time.perf_counter() - start)  # the call only
            if isinstance(answer, Exception):
                problem, kind = f"{type(answer).__name__}: {str(answer)[:500]}", "errors"
            else:
                problem, kind = difference(references[index], answer), "mismatches"
            mine["requests"] += 1
            mine["examples"] += len(next(iter(requests[index].values())))
            if problem is not None:
                mine[kind] += 1
                if len(mine["examples_kept"]) < KEPT_EXAMPLES:
                    mine["examples_kept"].append({"kind": kind, "request": index,
                                                  "thread": k, "problem": problem})
            i += 1

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    total = {key: sum(s[key] for s in stats)
             for key in ("requests", "examples", "errors", "mismatches")}
    total["latencies"] = [x for s in stats for x in s["latencies"]]
    total["examples_kept"] = [x for s in stats for x in s["examples_kept"]][:KEPT_EXAMPLES]
    return total


def serve(spec):
    """A serving child: TensorFlow and TF Text's ops only; for each export: load,
    warm up, say ready, wait for go, run the timed window; answer in JSON."""
    block_modules()
    import tensorflow as tf

    register_tf_text_ops(tf)
    with open(spec["inputs"]) as f:
        inputs = json.load(f)
    answer = {}
    for name, path in spec["exports"].items():
        signature = tf.saved_model.load(path).signatures["serving_default"]
        requests = inputs[name]["requests"]
        references = [decode(r) for r in inputs[name]["references"]]
        serve_one = lambda request: call(signature, request)  # noqa: E731
        # Every thread answers every request once at least: all shapes traced, the
        # allocator's pools grown, before memory counts.
        warm = run_load(serve_one, requests, references, spec["threads"],
                        spec["warmup_seconds"], rounds=1)
        open(os.path.join(spec["sync"], f"ready_{name}_{spec['index']}"), "w").close()
        while not os.path.exists(os.path.join(spec["sync"], f"go_{name}")):
            time.sleep(0.05)
        samples, done = [], threading.Event()
        start = time.perf_counter()

        def sample():
            while not done.is_set():
                samples.append((time.perf_counter() - start, vm_rss_mb()))
                done.wait(1.0)

        sampler = threading.Thread(target=sample)
        sampler.start()
        timed = run_load(serve_one, requests, references, spec["threads"],
                         spec["seconds"])
        window = time.perf_counter() - start
        done.set()
        sampler.join()
        samples.append((window, vm_rss_mb()))
        # Warm-up answers count too: a wrong one is as wrong in the first seconds.
        timed["errors"] += warm["errors"]
        timed["mismatches"] += warm["mismatches"]
        timed["warmup_requests"] = warm["requests"]
        timed["latencies"] = [round(x * 1000, 3) for x in timed["latencies"]]  # ms
        timed["examples_kept"] = (warm["examples_kept"] + timed["examples_kept"])[
            :KEPT_EXAMPLES]
        answer[name] = dict(timed, window_s=window, **memory_figures(samples))
    with open(spec["answer"], "w") as f:
        json.dump(answer, f)


# ----------------------------------------------------------------- the orchestration


def run_config(exports, inputs_file, work, processes, threads, args):
    """`processes` serving children of `threads` threads each; for each export their
    timed windows start together (each child says ready, then all get go). A child
    that dies or hangs counts as one error. {export: merged figures}."""
    sync = tempfile.mkdtemp(prefix=f"p{processes}_t{threads}_", dir=work)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    children = []
    for index in range(processes):
        spec = {"exports": exports, "inputs": inputs_file, "threads": threads,
                "seconds": args.seconds, "warmup_seconds": args.warmup_seconds,
                "sync": sync, "index": index,
                "answer": os.path.join(sync, f"answer_{index}.json")}
        log = open(os.path.join(sync, f"child_{index}.log"), "w")
        children.append((spec, log, subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--role=serve",
             f"--spec={json.dumps(spec)}"], cwd=REPO, stdout=log,
            stderr=subprocess.STDOUT, env=env)))
    deadline = time.monotonic()
    for name in exports:
        deadline += args.load_timeout + args.seconds + args.warmup_seconds
        while time.monotonic() < deadline:
            if all(os.path.exists(os.path.join(sync, f"ready_{name}_{i}")) or
                   child.poll() is not None for i, (_, _, child) in enumerate(children)):
                break
            time.sleep(0.05)
        open(os.path.join(sync, f"go_{name}"), "w").close()
    answers = []
    for spec, log, child in children:
        try:
            child.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()  # hung (a deadlock is a failure too)
            child.wait()
        log.close()
        if child.returncode == 0:
            with open(spec["answer"]) as f:
                answers.append(json.load(f))
        else:
            with open(log.name, errors="replace") as f:
                tail = f.read()[-2000:]
            answers.append({"failed": f"serving process {spec['index']} ended with "
                                      f"status {child.returncode}: {tail}"})
    return {name: merge([a.get(name, a) for a in answers]) for name in exports}


def merge(parts):
    """The figures of one export over a configuration's processes."""
    done = [p for p in parts if "failed" not in p]
    latencies = np.array([x for p in done for x in p["latencies"]], dtype=float)
    row = {key: sum(p[key] for p in done) for key in
           ("requests", "examples", "warmup_requests", "errors", "mismatches")}
    row["errors"] += len(parts) - len(done)
    row["requests_per_s"] = round(sum(p["requests"] / p["window_s"] for p in done), 2)
    row["examples_per_s"] = round(sum(p["examples"] / p["window_s"] for p in done), 2)
    for q in (50, 99):
        row[f"latency_p{q}_ms"] = (round(float(np.percentile(latencies, q)), 3)
                                   if latencies.size else None)
    for key in ("rss_start_mb", "rss_end_mb", "rss_slope_mb_per_min"):
        row[key] = round(sum(p[key] for p in done), 3) if done else None
    row["per_process"] = [{k: p[k] for k in ("requests", "window_s", "rss_start_mb",
                                            "rss_end_mb", "rss_slope_mb_per_min",
                                            "rss_samples")} for p in done]
    row["examples_kept"] = ([p["failed"] for p in parts if "failed" in p] + [
        x for p in done for x in p["examples_kept"]])[:KEPT_EXAMPLES]
    return row


def reference_inputs(exports, count):
    """{export: {"requests", "references"}}: the request set of each export's
    signature and its answers, one call at a time (JSON-ready, tensors encoded)."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the ops the exports use)

    inputs = {}
    for name, path in exports.items():
        signature = tf.saved_model.load(path).signatures["serving_default"]
        requests = request_set(sorted(signature.structured_input_signature[1]), count)
        inputs[name] = {"requests": requests, "references": [
            {k: encode(v) for k, v in call(signature, r).items()} for r in requests]}
    return inputs


def print_table(rows):
    print("\n| export | processes × threads | requests | errors | mismatches | "
          "requests/s | examples/s | p50 ms | p99 ms | RSS MB start → end | "
          "RSS MB/min | others' cores |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in rows:
        print(f"| {r['export']} | {r['processes']} × {r['threads']} | {r['requests']} | "
              f"{r['errors']} | {r['mismatches']} | {r['requests_per_s']} | "
              f"{r['examples_per_s']} | {r['latency_p50_ms']} | {r['latency_p99_ms']} | "
              f"{r['rss_start_mb']} → {r['rss_end_mb']} | {r['rss_slope_mb_per_min']} | "
              f"{r['other_processes_cores']} |")


def counts(text):
    values = [int(v) for v in text.split(",") if v.strip()]
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive counts, got {text!r}")
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--threads", type=counts, default=[1, 2, 4, 8], help="e.g. 1,2,4,8")
    add("--processes", type=counts, default=[2, 4], help="e.g. 2,4 (empty: none)")
    add("--seconds", type=float, default=60.0, help="timed window per configuration")
    add("--warmup_seconds", type=float, default=10.0)
    add("--requests", type=int, default=32, help="requests in the fixed set")
    add("--scale", choices=sorted(SCALES), default="tiny", help="of the built models")
    add("--classifier_dir", help="a classifier SavedModel instead of a built one")
    add("--squad_dir", help="a SQuAD SavedModel instead of a built one")
    add("--quiet_wait", type=float, default=120.0, help="seconds to wait at most, "
        "before each configuration, for other processes to go quiet")
    add("--load_timeout", type=float, default=600.0, help="seconds a serving process "
        "may take to load and warm up")
    add("--work_dir", help="exports and logs; kept (default: a temporary one)")
    add("--output", help="JSON results file")
    add("--role", help=argparse.SUPPRESS)
    add("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "serve":
        return serve(json.loads(args.spec))
    for flag in ("classifier_dir", "squad_dir"):
        path = getattr(args, flag)
        if path and not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise SystemExit(f"--{flag}={path}: no saved_model.pb there.")

    work = args.work_dir or tempfile.mkdtemp(prefix="concurrent_load_")
    os.makedirs(work, exist_ok=True)
    exports = {"classifier": args.classifier_dir, "squad": args.squad_dir}
    if not all(exports.values()):
        built = build_exports(os.path.join(work, "exports"), args.scale)
        exports = {k: v or built[k] for k, v in exports.items()}
    inputs_file = os.path.join(work, "requests_and_references.json")
    with open(inputs_file, "w") as f:
        json.dump(reference_inputs(exports, args.requests), f)

    rows = []
    for processes, threads in ([(1, n) for n in args.threads] +
                               [(p, 1) for p in args.processes]):
        waited = wait_quiet(args.quiet_wait)
        busy, own = busy_seconds()
        start = time.perf_counter()
        merged = run_config(exports, inputs_file, work, processes, threads, args)
        busy_after, own_after = busy_seconds()
        others = max(0.0, (busy_after - busy) - (own_after - own)) / (
            time.perf_counter() - start)
        for name, row in merged.items():
            rows.append(dict(export=name, processes=processes, threads=threads, **row,
                             waited_for_quiet_s=waited,
                             other_processes_cores=round(others, 2)))
    print_table(rows)
    for r in rows:
        for example in r["examples_kept"]:
            print(f"\n{r['export']} {r['processes']}×{r['threads']}: {example}")
    passed = all(r["errors"] == 0 and r["mismatches"] == 0 for r in rows)
    result = {"passed": passed, "exports": exports, "scale": args.scale,
              "seconds": args.seconds, "warmup_seconds": args.warmup_seconds,
              "requests_in_set": args.requests, "cores": os.cpu_count(),
              "versions": versions(("tensorflow", "tensorflow-text", "keras")),
              "rows": rows}
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=1)
    if not args.work_dir:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
