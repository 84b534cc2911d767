"""Kill trials: `run_pretraining` and `run_classifier` (tiny model, with
--save_checkpoints_steps and --seed) SIGKILLed at random moments, some of them while
a checkpoint file is being written, then started again with the same command until
it finishes.

Each trial passes when the run ends at the requested step, its final weights equal an
uninterrupted run's (max abs diff ≤ 1e-5), it trained at most one checkpoint interval
again, and no complete checkpoint is unreadable. Prints a table and a summary; writes
every trial to --output (JSON); exits 1 if any trial failed.

    .venv/bin/python benchmarks/kill_trials.py --trials 20 --output kill_trials.json
"""

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from keras_bert_app import names  # noqa: E402
from tests.reliability import faults  # noqa: E402

PIPELINES = {"run_pretraining": (faults.pretraining_workspace, faults.pretraining_flags),
             "run_classifier": (faults.classifier_workspace, faults.classifier_flags)}
TOLERANCE = 1e-5
# Printed by both pipelines once the model is built, just before `fit`.
TRAINING_STARTS = "→"
MAX_ATTEMPTS = 3  # per trial, when the run finishes before its kill moment


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="Trials per pipeline.")
    parser.add_argument("--pipelines", default=",".join(PIPELINES))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--save_checkpoints_steps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7, help="The pipelines' --seed.")
    parser.add_argument("--during_write", type=float, default=0.3,
                        help="Share of trials killed while a checkpoint is written.")
    parser.add_argument("--random_seed", type=int, default=0, help="Kill moments.")
    parser.add_argument("--workdir", default=None, help="Default: a temporary folder.")
    parser.add_argument("--output", default=None, help="JSON file of every trial.")
    return parser.parse_args()


def run_pipeline(name, root, args, rng):
    make_workspace, make_flags = PIPELINES[name]
    workspace = make_workspace(os.path.join(root, "data"))

    def flags(model_dir):
        return make_flags(workspace, model_dir, args.steps, args.save_checkpoints_steps,
                          seed=args.seed)

    # The uninterrupted run, timed: start-up, then training (from the line announcing
    # the steps, "steps 0 → N") to the end; random kills fall within training.
    reference_dir = os.path.join(root, "reference")
    child = faults.Child(name, flags(reference_dir))
    started, training_started = time.monotonic(), None
    while child.running():
        if training_started is None and TRAINING_STARTS in child.output:
            training_started = time.monotonic()
        time.sleep(0.01)
    if child.wait() != 0 or training_started is None:
        raise SystemExit(f"The uninterrupted {name} failed:\n{child.output[-3000:]}")
    duration = time.monotonic() - started
    training_seconds = time.monotonic() - training_started
    reference = faults.read_weights(os.path.join(reference_dir, names.WEIGHTS_FILE))
    print(f"{name}: uninterrupted run {duration:.1f}s, training {training_seconds:.1f}s",
          flush=True)

    write_every = round(1 / args.during_write) if args.during_write > 0 else 0
    trials = []
    for index in range(args.trials):
        during_write = bool(write_every) and index % write_every == 0
        for attempt in range(MAX_ATTEMPTS):  # a run that ended before its moment: again
            model_dir = os.path.join(root, f"trial{index:03d}-{attempt}")
            checkpoints = os.path.join(model_dir, "checkpoints")
            if during_write:
                moment, kill_at = "checkpoint write", None
                make_moment = lambda child, c=checkpoints: \
                    faults.while_checkpoint_is_written(c)
            else:
                # Any moment of training, its checkpoints and the model directory at
                # the end (a kill during start-up only repeats it).
                # A run that ended before its moment (the machine was faster than
                # during the timed run) is tried again with a moment half as late.
                kill_at = rng.uniform(0, training_seconds) / 2 ** attempt
                moment = f"train+{kill_at:.1f}s"
                make_moment = lambda child, at=kill_at: faults.seconds_after_output(
                    child, TRAINING_STARTS, at)
            started = time.monotonic()
            trial = faults.kill_trial(lambda: faults.Child(name, flags(model_dir)),
                                      model_dir, make_moment, args.steps,
                                      args.save_checkpoints_steps, reference)
            if trial["killed"]:
                break
        trial.pop("resume_output")
        trial.update(pipeline=name, trial=index, moment=moment, kill_at_s=kill_at,
                     attempts=attempt + 1, seconds=round(time.monotonic() - started, 1))
        trial["ok"] = (trial["killed"] and trial["final_step"] == args.steps
                       and not trial["unreadable"]
                       and trial["lost"] <= args.save_checkpoints_steps
                       and trial["max_abs_diff"] <= TOLERANCE)
        trials.append(trial)
        print(row(trial), flush=True)
    return {"uninterrupted_seconds": round(duration, 1), "trials": trials}


HEADER = (f"{'pipeline':16} {'#':>3} {'moment':>16} {'killed':>6} {'progress':>8} "
          f"{'resumed':>7} {'lost':>4} {'partial':>7} {'unread':>6} {'final':>5} "
          f"{'max|diff|':>10} {'ok':>3}")


def row(t):
    return (f"{t['pipeline']:16} {t['trial']:>3} {t['moment']:>16} "
            f"{'yes' if t['killed'] else 'no':>6} {t['progress']:>8} {t['resumed_at']:>7} "
            f"{t['lost']:>4} {len(t['partials']):>7} {len(t['unreadable']):>6} "
            f"{t['final_step']:>5} {t['max_abs_diff']:>10.2e} "
            f"{'ok' if t['ok'] else 'NO':>3}")


def main():
    args = parse_args()
    rng = random.Random(args.random_seed)
    root = args.workdir or tempfile.mkdtemp(prefix="kill_trials-")
    print(f"{platform.node()}: {args.trials} trials per pipeline, {args.steps} steps, "
          f"a checkpoint every {args.save_checkpoints_steps}; work in {root}")
    print(HEADER, flush=True)
    results = {name: run_pipeline(name, os.path.join(root, name), args, rng)
               for name in args.pipelines.split(",")}
    print("\n" + HEADER)
    summary = {}
    for name, result in results.items():
        trials = result["trials"]
        for trial in trials:
            print(row(trial))
        summary[name] = {
            "trials": len(trials), "passed": sum(t["ok"] for t in trials),
            "killed": sum(t["killed"] for t in trials),
            "killed_during_checkpoint_write": sum(bool(t["partials"]) for t in trials),
            "max_lost_steps": max((t["lost"] for t in trials), default=0),
            "max_abs_diff": max((t["max_abs_diff"] for t in trials), default=0.0),
            "unreadable_checkpoints": sum(len(t["unreadable"]) for t in trials)}
    for name, s in summary.items():
        print(f"{name}: {s['passed']}/{s['trials']} passed; killed {s['killed']} "
              f"({s['killed_during_checkpoint_write']} mid checkpoint write); most steps "
              f"lost {s['max_lost_steps']} (interval {args.save_checkpoints_steps}); "
              f"max |diff| {s['max_abs_diff']:.2e}; unreadable checkpoints "
              f"{s['unreadable_checkpoints']}")
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"settings": vars(args), "summary": summary, "results": results},
                      f, indent=2, default=str)
        print(f"Wrote {args.output}")
    return 0 if all(s["passed"] == s["trials"] for s in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
