"""Peak memory (and time) of one BERT pre-training step, with and without `--remat`.

One training step of keras_bert_app's BertPretrainer (MLM + NSP, 20 masked positions,
dropout 0.1, AdamW with global-norm clipping: the run_pretraining step) on random full
-length batches, each setting in its own process on the TensorFlow backend. This
machine has no GPU, so the figures are the **host memory** of TensorFlow on CPU
(TensorFlow keeps no device-memory statistics for the CPU): the process's resident
set, read from /proc.

- `state`: resident set after the model and the optimizer are built (weights, AdamW's
  two moments, the framework itself), before any step.
- `step peak`: the most the resident set rises during a training step above what it
  was just before the step: activations kept for the backward pass, gradients,
  temporaries. Measured on a step after the first (the first also traces the graph;
  its own rise is reported as `first step`). The peak is the kernel's high-water mark
  (VmHWM, what `getrusage` reports as ru_maxrss), reset before each step by writing 5
  to /proc/self/clear_refs. The children run with glibc's `MALLOC_MMAP_THRESHOLD_`
  fixed at 64 KiB, so that every tensor's memory goes back to the system when it is
  freed: otherwise malloc keeps some of step 1's memory, the next step reuses it,
  and the rise under-counts.
- `device estimate`: what the step needs on an accelerator in float32: weights and
  AdamW's moments (3 x 4 bytes a parameter) plus the measured step peak, without
  the CUDA context, library workspaces or allocator fragmentation (not measurable
  here). TensorFlow without XLA; XLA on a GPU schedules memory in its own way.

A watchdog kills a child whose resident set passes `--max_rss_gb` (recorded as
"exceeded"), and a run is not started unless /proc/meminfo's MemAvailable leaves that
much and 1 GiB more: the machine is shared.

    .venv/bin/python benchmarks/memory_benchmark.py --run bert_base,512,8,0 \\
        --run bert_base,512,8,1 --run bert_large,512,8,1 --max_rss_gb 16
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

from harness import REPO, load

GIB = 2 ** 30


def status_kib(field, pid="self"):
    """A `kB` field of /proc/PID/status (VmRSS, VmHWM) in bytes; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/meminfo has no MemAvailable")


def child(spec):
    """One setting: build, then the first step and `spec["steps"]` measured ones.
    Prints one JSON line."""
    import resource

    import keras
    import numpy as np

    from keras_bert_app import names
    from keras_bert_app.config import BertConfig
    from keras_bert_app.models import BertEncoder, BertPretrainer
    from keras_bert_app.training.optimizers import create_optimizer

    config = BertConfig.from_preset(spec["preset"])
    batch, seq, predictions = spec["batch"], spec["seq"], spec["predictions"]
    keras.utils.set_random_seed(0)
    model = BertPretrainer(BertEncoder(config, remat=spec["remat"]))
    model.compile(optimizer=create_optimizer(1e-4, 10_000, 100),
                  jit_compile=spec["jit_compile"])
    model.optimizer.build(model.trainable_variables)

    rng = np.random.default_rng(0)
    ids = rng.integers(1000, config.vocab_size, (batch, seq)).astype("int32")
    x = {names.INPUT_WORD_IDS: ids, names.INPUT_MASK: np.ones_like(ids),
         names.INPUT_TYPE_IDS: (np.arange(seq)[None] >= seq // 2).astype("int32").repeat(
             batch, 0),
         names.MASKED_LM_POSITIONS: np.sort(np.stack(
             [rng.choice(np.arange(1, seq - 1), predictions, False)
              for _ in range(batch)]), 1).astype("int32")}
    y = {names.MASKED_LM_IDS: rng.integers(1000, config.vocab_size,
                                           (batch, predictions)).astype("int32"),
         names.MASKED_LM_WEIGHTS: np.ones((batch, predictions), "float32"),
         names.NEXT_SENTENCE_LABELS: rng.integers(0, 2, (batch, 1)).astype("int32")}

    def step():
        """`(seconds, rise of the resident set's peak above its level before)`."""
        before = status_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM (and ru_maxrss) to the current resident set
        start = time.perf_counter()
        model.train_on_batch(x, y)
        seconds = time.perf_counter() - start
        peak = status_kib("VmHWM")
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return seconds, peak - before, peak, maxrss

    state = status_kib("VmRSS")
    first = step()
    # With steps=0 (the largest models, where a step takes minutes) the first step
    # stands for the step: its rise includes the tracing of the graph.
    measured = [step() for _ in range(spec["steps"])] or [first]
    first_seconds, first_rise = first[:2]
    print(json.dumps({
        "params": model.count_params(), "state": state, "first_seconds": first_seconds,
        "first_rise": first_rise, "step_seconds": float(np.median([m[0] for m in measured])),
        "step_rise": max(m[1] for m in measured), "peak": max(m[2] for m in measured),
        "ru_maxrss": max(m[3] for m in measured)}))


def run_child(spec, max_rss):
    """Runs one setting in its own process under the watchdog; its result dict."""
    available = mem_available()
    if available < max_rss + GIB:
        return {"error": f"not run: MemAvailable {available / GIB:.1f} GiB < "
                         f"{max_rss / GIB:.0f} + 1 GiB"}
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2",
               CUDA_VISIBLE_DEVICES="", MALLOC_MMAP_THRESHOLD_=str(64 * 1024),
               PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child",
                                json.dumps(spec)], env=env, cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched = {"max": 0, "exceeded": False}

    def watchdog():
        while process.poll() is None:
            rss = status_kib("VmRSS", process.pid) or 0
            watched["max"] = max(watched["max"], rss)
            if rss > max_rss:
                watched["exceeded"] = True
                process.kill()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watchdog, daemon=True)
    thread.start()
    out, err = process.communicate()
    thread.join()
    if watched["exceeded"]:
        return {"error": f"exceeded {max_rss / GIB:.0f} GiB (killed)"}
    if process.returncode:
        return {"error": f"failed ({process.returncode}): {err.strip()[-500:]}"}
    result = json.loads(out.strip().splitlines()[-1])
    result["watchdog_max"] = watched["max"]
    return result


def report(spec, result):
    name = (f"{spec['preset']} seq {spec['seq']} batch {spec['batch']} "
            f"remat={'on' if spec['remat'] else 'off'}")
    if "error" in result:
        return f"{name:38s} {result['error']}"
    device = 3 * 4 * result["params"] + result["step_rise"]
    if not spec["steps"]:
        name += " (first step)"
    return (f"{name:38s} state {result['state'] / GIB:5.2f}  step peak "
            f"{result['step_rise'] / GIB:6.2f}  (first step {result['first_rise'] / GIB:5.2f})"
            f"  process peak {result['peak'] / GIB:6.2f}  device estimate "
            f"{device / GIB:6.2f} GiB  step {result['step_seconds']:6.1f} s "
            f"(first {result['first_seconds']:.1f} s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", default=[],
                        help="PRESET,SEQ,BATCH,REMAT(0|1); repeat for several settings")
    parser.add_argument("--predictions", type=int, default=20)
    parser.add_argument("--steps", type=int, default=1,
                        help="measured steps after the first (median time, max peak); "
                             "0: the first step's figures")
    parser.add_argument("--jit_compile", action="store_true")
    parser.add_argument("--max_rss_gb", type=float, default=18.0,
                        help="kill a child whose resident set passes this (GiB)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child))

    runs = args.run or ["bert_base,512,8,0", "bert_base,512,8,1", "bert_large,512,8,1"]
    print(f"TensorFlow on CPU, host memory (no GPU here); {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, MemAvailable "
          f"{mem_available() / GIB:.1f} GiB; AdamW, MLM+NSP, {args.predictions} masked "
          f"positions, dropout 0.1, jit_compile={args.jit_compile}")
    for run in runs:
        preset, seq, batch, remat = run.split(",")
        spec = dict(preset=preset, seq=int(seq), batch=int(batch), remat=bool(int(remat)),
                    predictions=args.predictions, steps=args.steps,
                    jit_compile=args.jit_compile)
        load_before = load()
        result = run_child(spec, args.max_rss_gb * GIB)
        print(report(spec, result) + f"  load {load_before}->{load()}", flush=True)
        print("  raw " + json.dumps({**spec, **result}), flush=True)


if __name__ == "__main__":
    main()
