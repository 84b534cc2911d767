"""Teardown: seconds from the last step to the return of `fit`, `evaluate` and
`predict`, for every dataset kind the project builds, with `tf.data`'s autotuning
model on (TensorFlow's default: "before") and off (ours: `tf_data_options.finish`),
and the training steps/s of both (issue 19).

Kinds (teardown_kinds.py: each built by the library's own code as its runner builds
it, on small real data, with the task model the runner compiles, XLA off, a
`--preset` encoder on the uncased MiniLM vocabulary): `records` and `raw_text`
(run_pretraining's `make_dataset` → `pretraining_dataset` over TFRecords made from
demo_data/shakespeare.txt, or `raw_text_pretraining_dataset` on the text; evaluation
on its `is_training=False` dataset, as `--do_eval`), `classifier` (SST-2),
`squad` (SQuAD v1.1), `ner` (CoNLL-2003), `multiple_choice` (SQuAD made multiple
choice).

Each (kind, arm) runs in a fresh process: `fit(ds, steps_per_epoch=N, epochs=1)`,
`evaluate(ds.take(M))`, then the task's own predict path (`model.predict` wrapped to
time each call). "late" = the call's return − its last `on_*_batch_end`: what the user
waits after the last step (Keras drops an exhausted iterator of known length before
`on_*_end`, so timing from there would miss that wait; `late_after_end_s` in the
JSON is timed from `on_*_end`). Arm "on" adds `Options().autotune.enabled = True` to
the library's datasets (later options win); "off" uses them as they are. steps/s:
the steps after the first, from `on_train_batch_end` timestamps. Arms interleave;
the table shows medians (and the largest "late") of `--repeats`. Before each process
the benchmark waits (up to `--quiet_wait` s) for other processes to leave the CPUs
idle and reports the cores they used during it.

    .venv/bin/python benchmarks/teardown_benchmark.py --output=/tmp/teardown.json
"""

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time

from harness import REPO, Runs, load, require_minilm_dir, versions
from teardown_kinds import BUILDERS, DATA, prepare

ARMS = ("on", "off")  # the autotuning model: TF's default (before), ours (after)
# Batch per kind: steps of about 1 s or more for bert_mini on 2 cores.
KINDS = {"records": 16, "raw_text": 16, "classifier": 128, "squad": 6, "ner": 96,
         "multiple_choice": 4}
CALLS = ("fit", "evaluate", "predict")


def measure_role(spec):
    """One kind in one arm: the late seconds of fit, evaluate and predict, steps/s,
    and whether each dataset the library built has the autotuning model on."""
    import keras
    import tensorflow as tf

    from keras_bert_app.tf_data_options import autotune_model_enabled

    class Timer(keras.callbacks.Callback):
        """Timestamps: every training step's end, each call's last step and end."""

        def __init__(self):
            super().__init__()
            self.steps, self.last, self.end = [], {}, {}

        def on_train_begin(self, logs=None):
            self.begin = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.steps.append(time.perf_counter())
            self.last["fit"] = self.steps[-1]

        def on_test_batch_end(self, batch, logs=None):
            self.last["evaluate"] = time.perf_counter()

        def on_predict_batch_end(self, batch, logs=None):
            self.last["predict"] = time.perf_counter()

        def on_train_end(self, logs=None):
            self.end["fit"] = time.perf_counter()

        def on_test_end(self, logs=None):
            self.end["evaluate"] = time.perf_counter()

        def on_predict_end(self, logs=None):
            self.end["predict"] = time.perf_counter()

    on = tf.data.Options()
    on.autotune.enabled = True  # TensorFlow's default, set explicitly: later options win

    def arm(dataset):
        return dataset.with_options(on) if spec["arm"] == "on" else dataset

    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    model, train, evaluation, predict = BUILDERS[spec["kind"]](spec)
    evaluation = (evaluation or train).take(spec["eval_steps"])
    answer = {"setup_s": time.perf_counter() - start,
              "late_s": {}, "late_after_end_s": {},
              "model_on_as_built": {"fit": autotune_model_enabled(train),
                                    "evaluate": autotune_model_enabled(evaluation)}}
    timer = Timer()

    def late(call, returned):
        answer["late_s"].setdefault(call, 0.0)
        answer["late_after_end_s"].setdefault(call, 0.0)
        answer["late_s"][call] += returned - timer.last[call]
        answer["late_after_end_s"][call] += returned - timer.end[call]

    model.fit(arm(train), steps_per_epoch=spec["steps"], epochs=1, callbacks=[timer],
              verbose=0)
    late("fit", time.perf_counter())
    answer["steps_per_s"] = (len(timer.steps) - 1) / (timer.steps[-1] - timer.steps[0])
    answer["first_step_s"] = timer.steps[0] - timer.begin  # tracing, first batch
    answer["fit_s"] = timer.end["fit"] - timer.begin
    model.evaluate(arm(evaluation), callbacks=[timer], verbose=0)
    late("evaluate", time.perf_counter())
    if predict is not None:
        built, original = [], model.predict

        def timed_predict(x, **kwargs):
            if isinstance(x, tf.data.Dataset):
                built.append(autotune_model_enabled(x))
                x = arm(x)
            else:  # arrays: Keras builds the tf.data pipeline itself
                built.append(f"Keras-built from {type(x).__name__} (model on)")
            result = original(x, callbacks=[timer], **kwargs)
            late("predict", time.perf_counter())
            return result

        model.predict = timed_predict
        predict(model)
        answer["predict_calls"] = len(built)
        answer["model_on_as_built"]["predict"] = built
    return answer


ROLES = {"prepare": prepare, "measure": measure_role}


# === The benchmark ===

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--kinds", default=",".join(KINDS), help="comma-separated, of " + ", ".join(KINDS))
    add("--repeats", type=int, default=2)
    add("--preset", default="bert_mini", help="encoder size (BertConfig preset)")
    add("--steps", type=int, default=10, help="fit's steps_per_epoch")
    add("--eval_steps", type=int, default=10, help="evaluate(ds.take(M))")
    add("--predict_examples", type=int, default=128,
        help="examples (questions, sentences, rows) each task predicts")
    add("--squad_train_examples", type=int, default=600)
    add("--batch", action="append", default=[], metavar="KIND=N",
        help="a kind's batch size (defaults: " + ", ".join(
            f"{k}={v}" for k, v in KINDS.items()) + ")")
    add("--quiet_wait", type=float, default=20.0, help="seconds to wait at most, before "
        "each process, for other processes to go quiet")
    add("--work_dir", help="kept afterwards (default: a temporary one)")
    add("--output", help="JSON results file")
    add("--role", choices=sorted(ROLES), help=argparse.SUPPRESS)
    add("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = set(args.kinds.split(",")) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds {sorted(unknown)}; the kinds are {list(KINDS)}")
    return args


def figures(answers, *keys):
    """The values at `answers[i][keys...]`, where present."""
    values = []
    for answer in answers:
        for key in keys:
            answer = answer.get(key) if isinstance(answer, dict) else None
        if answer is not None:
            values.append(answer)
    return values


def main():
    args = parse_args()
    if args.role:
        spec = json.loads(args.spec)
        with open(spec["answer"], "w") as f:
            json.dump(ROLES[args.role](spec), f)
        return
    kinds = args.kinds.split(",")
    batches = dict(KINDS, **{k: int(v) for k, v in (b.split("=") for b in args.batch)})
    work = args.work_dir or tempfile.mkdtemp(prefix="teardown_")
    os.makedirs(work, exist_ok=True)
    base = dict(work=work, vocab=os.path.join(require_minilm_dir(), "vocab.txt"),
                corpus=os.path.join(REPO, "demo_data", "shakespeare.txt"),
                squad=os.path.join(DATA, "squad", "train-v1.1-subset.json"),
                predict_examples=args.predict_examples, preset=args.preset,
                steps=args.steps, eval_steps=args.eval_steps,
                train_examples=args.squad_train_examples)
    print(f"{os.cpu_count()} CPUs; load at start {open('/proc/loadavg').read().split()[:3]}"
          f"; {versions(('tensorflow', 'keras'))}", flush=True)
    runs = Runs(args.quiet_wait, os.path.abspath(__file__))
    runs.child("prepare", dict(base, answer=os.path.join(work, "prepare.json")),
               os.path.join(work, "prepare.log"))
    results = {k: {a: [] for a in ARMS} for k in kinds}
    for repeat in range(args.repeats):
        for kind in kinds:
            # Interleaved, and the first arm alternates between repeats.
            for arm in ARMS if repeat % 2 == 0 else ARMS[::-1]:
                name = f"{kind}_{arm}_{repeat}"
                spec = dict(base, kind=kind, arm=arm, batch=batches[kind],
                            model_dir=os.path.join(work, name),
                            answer=os.path.join(work, name + ".json"))
                log = os.path.join(work, name + ".log")
                answer, wall = runs.child("measure", spec, log)
                answer.update(wall_s=wall, **runs.noise[os.path.basename(log)])
                results[kind][arm].append(answer)
                print(f"  {name}: late " + ", ".join(
                    f"{k} {v:.1f} s" for k, v in answer["late_s"].items())
                      + f"; {answer['steps_per_s']:.2f} steps/s, process {wall:.0f} s; "
                      f"waited {answer['waited_for_quiet_s']} s for quiet, others used "
                      f"{answer['other_processes_cores']} cores; load {load()}",
                      flush=True)
    print_results(results, args, batches)
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"args": vars(args), "batches": batches, "results": results,
                       "versions": versions(("tensorflow", "keras"))}, f, indent=1)
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)


def print_results(results, args, batches):
    def late(answers, call):  # "median (largest)"
        values = figures(answers, "late_s", call)
        return f"{statistics.median(values):.1f} ({max(values):.1f})" if values else "—"

    print(f"\n{args.preset}, fit {args.steps} steps, evaluate {args.eval_steps}; "
          f"{args.repeats} runs each: late s = median (largest); 'on' = tf.data's "
          "autotuning model on (TF default, before), 'off' = ours")
    print(f"{'kind':<16}{'arm':<4}{'batch':>6}" + "".join(
        f"{c + ' late s':>18}" for c in CALLS) + f"{'steps/s':>9}{'off/on':>8}"
          f"{'others':>8}")
    for kind, arms in results.items():
        rates = {a: statistics.median(figures(arms[a], "steps_per_s")) for a in ARMS}
        for a in ARMS:
            ratio = f"{rates['off'] / rates['on']:.3f}" if a == "off" else ""
            others = statistics.median(figures(arms[a], "other_processes_cores"))
            print(f"{kind:<16}{a:<4}{batches[kind]:>6}" + "".join(
                f"{late(arms[a], c):>18}" for c in CALLS) +
                f"{rates[a]:>9.3f}{ratio:>8}{others:>8.2f}")
        built = results[kind]["off"][0]["model_on_as_built"]
        if any(v is not False for v in built.values() for v in (
                v if isinstance(v, list) else [v])):
            print(f"  ! {kind}: not every dataset has the model off as the library "
                  f"passes it to Keras: {built}")
    print(f"others = cores other processes used during the run (median); load at end "
          f"{open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
