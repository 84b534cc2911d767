"""GPU speed of keras_bert_app on JAX (XLA) against Hugging Face on PyTorch, one run.

Every configuration runs in its own fresh process (children of this script), one
after the other, on the same GPU, with the same architecture (`--preset`, default
bert_base: L12 H768 A12, 30,522 tokens), the same batch of random tokens (`--seq`,
`--batch`, default 128 x 32, no padding) and a 2-class head. It prints:

1. Training step throughput, sequences/s: the median of `--steps` timed steps after
   `--warmup` untimed ones, each step waited for (`train_on_batch`, whose logs are
   copied to the host; `torch.cuda.synchronize()`). Ours: `BertClassifier` compiled
   with the project's optimizer (`training.create_optimizer`: AdamW, weight decay
   0.01 except LayerNorm and biases, gradients clipped to global norm 1.0, warm-up
   then linear decay), under KERAS_BACKEND=jax (`jit_compile="auto"`, i.e. jax.jit),
   in float32 and in the `mixed_bfloat16` policy. Also `fit()` over the same number
   of steps from NumPy arrays (mean of the whole call: Keras' loop, host-to-device
   copies and all). Theirs: transformers' `BertForSequenceClassification` (eager,
   its default attention implementation) with the same AdamW (torch's fused kernel
   on CUDA, what transformers' Trainer uses by default), the same clipping and
   schedule, in float32 (torch's default: full-precision matmuls), float32 with TF32
   matmuls (`torch.set_float32_matmul_precision("high")`: what XLA does by default
   with float32 dots on an Ampere or later GPU, so the like-for-like float32 row)
   and under `torch.autocast(bfloat16)`.
2. Inference throughput (forward pass only, dropout off): ours `predict_on_batch`,
   theirs `model.eval()` under `torch.inference_mode()`; same statistic.
3. Compilation and the persistent cache: for ours in float32, a first process whose
   `training.enable_compilation_cache(folder)` folder is empty, then a second fresh
   process with the same folder: the wall seconds from the parent's launch of the
   process to the end of its first training step, the first training step's own
   seconds (tracing, compiling or loading the program, running it) and the first
   prediction's, and the programs the folder held before and after. The second
   process compiling less shows as a shorter first step. `--warm_bf16` repeats this
   for mixed_bfloat16.

On the GPU machine (H100), from the repository root, with keras 3.15.1 importable
(TensorFlow is not needed: under JAX the models and `training` import without it; on
a machine without a network, bring keras, namex and optree as wheels):

    KERAS_BACKEND=jax PYTHONUNBUFFERED=1 python3 benchmarks/gpu_jax_benchmark.py \\
        --preset bert_base --seq 128 --batch 32 --steps 20 --warmup 5 --warm_bf16 \\
        --output results.json

A quick check of the script on a CPU (tiny model, two steps):

    KERAS_BACKEND=jax .venv/bin/python benchmarks/gpu_jax_benchmark.py --device cpu \\
        --preset bert_tiny --seq 16 --batch 4 --steps 2 --warmup 1
"""

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from harness import step_times, torch_adamw

LEARNING_RATE = 2e-5
WEIGHT_DECAY = 0.01
# The schedule's length only sets the learning rate's value, never the step's cost.
SCHEDULE_STEPS, SCHEDULE_WARMUP = 10_000, 100
TORCH_MODES = ("float32", "float32_tf32", "bf16_autocast")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--preset", default="bert_base", help="a keras_bert_app BertConfig preset")
    add("--seq", type=int, default=128)
    add("--batch", type=int, default=32)
    add("--num_classes", type=int, default=2)
    add("--steps", type=int, default=20, help="timed steps")
    add("--warmup", type=int, default=5, help="untimed steps before them")
    add("--device", choices=("gpu", "cpu"), default="gpu",
        help="gpu: stop unless JAX and torch both see a GPU; cpu: a smoke test")
    add("--precisions", default="float32,mixed_bfloat16",
        help="Keras dtype policies of ours, comma-separated (the first is the one "
             "whose compilation cache is measured)")
    add("--torch_modes", default=",".join(TORCH_MODES),
        help=f"Hugging Face runs, comma-separated, of {TORCH_MODES} ('' for none)")
    add("--warm_bf16", action="store_true",
        help="also measure the warm compilation cache for mixed_bfloat16")
    add("--cache_root", help="where the compilation-cache folders go (emptied first; "
        "default: a temporary folder)")
    add("--output", help="JSON file of every measurement")
    add("--role", help=argparse.SUPPRESS)  # child processes
    add("--spec", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ------------------------------------------------------------------ shared helpers

def random_batch(vocab_size, batch, seq, num_classes):
    """The batch both frameworks see: random token ids (no 0), full mask, segment 0."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1, vocab_size, (batch, seq)).astype("int32")
    return ids, np.ones_like(ids), np.zeros_like(ids), \
        rng.integers(0, num_classes, (batch,)).astype("int32")


def summary(times, batch):
    median = float(np.median(times))
    return {"median_s": median, "seq_per_s": batch / median,
            "min_s": float(np.min(times)), "max_s": float(np.max(times)),
            "times_s": [round(t, 6) for t in times]}


# ------------------------------------------------------------------ ours (JAX)

def keras_child(spec):
    """Ours in this process: JAX backend, one dtype policy; `spec["full"]` false
    stops after the first training step and the first prediction."""
    marks = {}
    import keras

    if keras.backend.backend() != "jax":
        raise SystemExit(f"KERAS_BACKEND is {keras.backend.backend()!r}; this "
                         "benchmark measures ours on JAX (KERAS_BACKEND=jax).")
    import jax

    import keras_bert_app as kba
    from keras_bert_app.training import create_optimizer, enable_compilation_cache
    from keras_bert_app.training.compilation import cached_programs

    marks["imported"] = time.time()
    # Before JAX compiles anything: it decides once, at its first compilation,
    # whether this process uses a persistent cache.
    cache = enable_compilation_cache(spec["cache_dir"]) if spec["cache_dir"] else None
    programs_before = cached_programs(cache)
    devices = jax.devices()
    if spec["device"] == "gpu" and devices[0].platform != "gpu":
        raise SystemExit(f"JAX sees no GPU: {devices}")

    # (Not keras.utils.set_random_seed: it imports TensorFlow where it is installed.)
    keras.mixed_precision.set_global_policy(spec["precision"])
    config = kba.BertConfig.from_preset(spec["preset"])
    classifier = kba.models.BertClassifier(kba.models.BertEncoder(config),
                                           num_classes=spec["num_classes"])
    classifier.compile(create_optimizer(LEARNING_RATE, SCHEDULE_STEPS, SCHEDULE_WARMUP,
                                        weight_decay=WEIGHT_DECAY))
    ids, mask, types, labels = random_batch(config.vocab_size, spec["batch"], spec["seq"],
                                            spec["num_classes"])
    host = {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}
    x = {k: jax.device_put(v) for k, v in host.items()}  # on the GPU, as theirs
    y = jax.device_put(labels)
    jax.block_until_ready((x, y))
    marks["built"] = time.time()

    start = time.perf_counter()
    classifier.train_on_batch(x, y)  # logs come back to the host: the step is done
    first_train = time.perf_counter() - start
    marks["first_step_end"] = time.time()
    programs_after_train = cached_programs(cache)
    start = time.perf_counter()
    np.asarray(classifier.predict_on_batch(x))
    first_predict = time.perf_counter() - start

    answer = {"framework": "keras_bert_app", "backend": "jax", "precision":
              spec["precision"], "devices": [str(d) for d in devices],
              "device_kind": devices[0].device_kind,
              "versions": {"keras": keras.__version__, "jax": jax.__version__},
              "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
              "config": config.to_dict(),
              "marks": marks, "first_train_step_s": first_train,
              "first_predict_s": first_predict, "cache_dir": cache,
              "cache_programs_before": programs_before,
              "cache_programs_after_first_step": programs_after_train,
              "cache_programs_after_first_predict": cached_programs(cache)}
    if spec["full"]:
        steps, warmup, batch = spec["steps"], spec["warmup"], spec["batch"]
        answer["train"] = summary(step_times(
            lambda: classifier.train_on_batch(x, y), warmup, steps), batch)
        answer["infer"] = summary(step_times(
            lambda: np.asarray(classifier.predict_on_batch(x)), warmup, steps), batch)

        def fit(n):
            tiled = {k: np.tile(v, (n, 1)) for k, v in host.items()}
            start = time.perf_counter()
            classifier.fit(tiled, np.tile(labels, n), batch_size=batch, epochs=1,
                           shuffle=False, verbose=0)
            return time.perf_counter() - start

        fit(max(1, warmup))  # fit's own first call (its iterator, a new input layout)
        seconds = fit(steps)
        answer["fit"] = {"seconds": seconds, "steps": steps,
                         "seq_per_s": steps * batch / seconds}
        stats = devices[0].memory_stats() or {}
        answer["peak_memory_mib"] = stats.get("peak_bytes_in_use", 0) / 2**20 or None
    answer["programs_in_cache_at_end"] = cached_programs(cache)
    return answer


# ------------------------------------------------------------------ theirs (torch)

def torch_child(spec):
    """Theirs in this process, each of `spec["modes"]` in turn on a fresh model."""
    marks = {}
    import torch
    import transformers

    marks["imported"] = time.time()
    cuda = spec["device"] == "gpu"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("torch sees no GPU.")
    device = torch.device("cuda" if cuda else "cpu")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    c = spec["config"]
    hf_config = transformers.BertConfig(
        vocab_size=c["vocab_size"], hidden_size=c["hidden_size"],
        num_hidden_layers=c["num_hidden_layers"],
        num_attention_heads=c["num_attention_heads"],
        intermediate_size=c["intermediate_size"], hidden_act=c["hidden_act"],
        hidden_dropout_prob=c["hidden_dropout_prob"],
        attention_probs_dropout_prob=c["attention_probs_dropout_prob"],
        max_position_embeddings=c["max_position_embeddings"],
        type_vocab_size=c["type_vocab_size"], layer_norm_eps=c["layer_norm_eps"],
        initializer_range=c["initializer_range"], num_labels=spec["num_classes"])
    ids, mask, types, labels = random_batch(c["vocab_size"], spec["batch"], spec["seq"],
                                            spec["num_classes"])
    inputs = {"input_ids": torch.from_numpy(ids).long().to(device),
              "attention_mask": torch.from_numpy(mask).long().to(device),
              "token_type_ids": torch.from_numpy(types).long().to(device)}
    y = torch.from_numpy(labels).long().to(device)

    answer = {"framework": "transformers", "backend": "torch",
              "device_name": torch.cuda.get_device_name() if cuda else "cpu",
              "versions": {"torch": torch.__version__,
                           "transformers": transformers.__version__},
              "marks": marks, "modes": {}}
    for mode in spec["modes"]:
        torch.manual_seed(0)
        torch.set_float32_matmul_precision("high" if mode == "float32_tf32" else "highest")
        autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                                  enabled=mode == "bf16_autocast")
        model = transformers.BertForSequenceClassification(hf_config).to(device)
        optimizer, scheduler = torch_adamw(model, LEARNING_RATE, WEIGHT_DECAY, SCHEDULE_STEPS,
                                           SCHEDULE_WARMUP, fused=cuda)
        if cuda:
            torch.cuda.reset_peak_memory_stats()

        def train_step():
            with autocast:
                loss = model(**inputs, labels=y).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            sync()

        def infer_step():
            with torch.inference_mode(), autocast:
                model(**inputs).logits
            sync()

        model.train()
        start = time.perf_counter()
        train_step()
        first = time.perf_counter() - start
        marks.setdefault("first_step_end", time.time())
        result = {"attention": getattr(model.config, "_attn_implementation", None),
                  "first_train_step_s": first,
                  "train": summary(step_times(train_step, spec["warmup"], spec["steps"]),
                                   spec["batch"])}
        model.eval()
        result["infer"] = summary(step_times(infer_step, spec["warmup"], spec["steps"]),
                                  spec["batch"])
        if cuda:
            result["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
        answer["modes"][mode] = result
        del model, optimizer, scheduler
        if cuda:
            torch.cuda.empty_cache()
    return answer


# ------------------------------------------------------------------ the parent

def run_child(args, role, spec, work, name, backend):
    """This script as `role` in a fresh process; its answer, with `launched` (the
    parent's clock just before the launch) and the child's wall seconds."""
    spec = dict(spec, answer=os.path.join(work, f"{name}.json"))
    # The repository first: a child runs as `python benchmarks/...`, whose own folder,
    # not the repository, heads its path (no installed keras_bert_app needed).
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([repo] + [p for p in [
                   os.environ.get("PYTHONPATH")] if p]))
    if args.device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
        env["CUDA_VISIBLE_DEVICES"] = ""
    command = [sys.executable, os.path.abspath(__file__), "--role", role,
               "--spec", json.dumps(spec)]
    print(f"--- {name} ({role}, KERAS_BACKEND={backend})", flush=True)
    launched = time.time()
    process = subprocess.Popen(command, env=env)
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.kill()
        process.wait()
        raise
    seconds = time.time() - launched
    if code:
        print(f"--- {name} failed ({code}) after {seconds:.1f} s", flush=True)
        return None
    with open(spec["answer"]) as f:
        answer = json.load(f)
    answer["launched"], answer["process_s"] = launched, seconds
    if "first_step_end" in answer["marks"]:
        answer["launch_to_first_step_s"] = answer["marks"]["first_step_end"] - launched
        answer["launch_to_import_s"] = answer["marks"]["imported"] - launched
    print(f"--- {name} done in {seconds:.1f} s: {_brief(answer)}", flush=True)
    return answer


def _brief(answer):
    """One line of a child's answer, for the log as the run goes."""
    parts = [f"launch→1st step {answer['launch_to_first_step_s']:.1f} s"] \
        if "launch_to_first_step_s" in answer else []
    if "first_train_step_s" in answer:
        parts.append(f"1st step {answer['first_train_step_s']:.2f} s, 1st predict "
                     f"{answer['first_predict_s']:.2f} s, cache programs "
                     f"{answer['cache_programs_before']}→"
                     f"{answer['programs_in_cache_at_end']}")
    for mode, result in [("", answer)] + list(answer.get("modes", {}).items()):
        if "train" in result:
            parts.append(f"{mode + ' ' if mode else ''}train "
                         f"{result['train']['seq_per_s']:.1f} seq/s, inference "
                         f"{result['infer']['seq_per_s']:.1f} seq/s")
    return "; ".join(parts)


def _stop(signum, frame):
    raise KeyboardInterrupt


def _warm_run(args, results, work, precision, spec):
    """A second fresh process of ours on the cache folder the first one filled."""
    results["compilation"][f"{precision}, same cache (warm)"] = run_child(
        args, "keras", spec, work, f"ours_{precision}_warm", "jax")


def fmt(value, spec="{:.1f}"):
    return "-" if value is None else spec.format(value)


def report(args, results):
    """The side-by-side tables."""
    ours, theirs = results["ours"], results.get("theirs") or {"modes": {}}
    print(f"\n{args.preset}, seq {args.seq}, batch {args.batch}, {args.num_classes} "
          f"classes; median of {args.steps} timed steps after {args.warmup} warm-up; "
          f"each configuration in its own process")
    print(f"\n{'sequences/s':<46}{'train step':>12}{'fit()':>10}{'inference':>11}"
          f"{'train ms':>10}{'peak MiB':>10}")
    rows = []
    for precision, answer in ours.items():
        if answer is None:
            rows.append((f"ours JAX {precision}", None, None, None, None, None))
            continue
        rows.append((f"ours JAX {precision}", answer["train"]["seq_per_s"],
                     answer["fit"]["seq_per_s"], answer["infer"]["seq_per_s"],
                     1000 * answer["train"]["median_s"], answer.get("peak_memory_mib")))
    for mode, result in theirs["modes"].items():
        rows.append((f"HF torch {mode} ({result['attention']})",
                     result["train"]["seq_per_s"], None, result["infer"]["seq_per_s"],
                     1000 * result["train"]["median_s"], result.get("peak_memory_mib")))
    for title, train, fit, infer, ms, mib in rows:
        print(f"  {title:<44}{fmt(train):>12}{fmt(fit):>10}{fmt(infer):>11}"
              f"{fmt(ms, '{:.2f}'):>10}{fmt(mib, '{:.0f}'):>10}")

    pairs = (("float32", "float32_tf32"), ("float32", "float32"),
             ("mixed_bfloat16", "bf16_autocast"))
    lines = []
    for precision, mode in pairs:
        a, b = ours.get(precision), theirs["modes"].get(mode)
        if a and b:
            lines.append(f"  ours {precision:<15}/ HF {mode:<15}"
                         f"train {a['train']['seq_per_s'] / b['train']['seq_per_s']:.2f}x"
                         f"   inference {a['infer']['seq_per_s'] / b['infer']['seq_per_s']:.2f}x")
    if lines:
        print("\nratio (ours / HF, sequences/s; >1: ours faster)")
        print("\n".join(lines))

    print(f"\n{'compilation (ours, JAX)':<40}{'launch→1st step s':>19}{'import s':>10}"
          f"{'1st step s':>12}{'1st predict s':>15}{'programs':>14}")
    for name, answer in results["compilation"].items():
        if answer is None:
            print(f"  {name:<38}failed")
            continue
        programs = (f"{answer['cache_programs_before']}→"
                    f"{answer['programs_in_cache_at_end']}")
        print(f"  {name:<38}{answer['launch_to_first_step_s']:>19.1f}"
              f"{answer['launch_to_import_s']:>10.1f}{answer['first_train_step_s']:>12.2f}"
              f"{answer['first_predict_s']:>15.2f}{programs:>14}")
    if theirs.get("launch_to_first_step_s") is not None:
        first = next(iter(theirs["modes"].values()))["first_train_step_s"]
        print(f"  {'HF torch (eager, no compilation)':<38}"
              f"{theirs['launch_to_first_step_s']:>19.1f}"
              f"{theirs['launch_to_import_s']:>10.1f}{first:>12.2f}{'-':>15}{'-':>14}")
    print("  (programs: files in the cache folder before the process → at its end)")


def main():
    args = parse_args()
    if args.role:
        spec = json.loads(args.spec)
        answer = (keras_child if args.role == "keras" else torch_child)(spec)
        with open(spec["answer"], "w") as f:
            json.dump(answer, f, indent=1)
        return

    work = tempfile.mkdtemp(prefix="gpu_jax_benchmark_")
    cache_root = args.cache_root or os.path.join(work, "xla_cache")
    shutil.rmtree(cache_root, ignore_errors=True)
    print(f"{platform.node()} {platform.machine()}, Python {platform.python_version()}, "
          f"work folder {work}, cache root {cache_root}", flush=True)
    base = {"preset": args.preset, "seq": args.seq, "batch": args.batch,
            "num_classes": args.num_classes, "steps": args.steps,
            "warmup": args.warmup, "device": args.device}
    precisions = [p for p in args.precisions.split(",") if p]
    results = {"args": vars(args), "ours": {}, "compilation": {}}
    # Stopped (SIGTERM, e.g. `timeout`): the child is ended, and what was measured
    # is still reported and written.
    signal.signal(signal.SIGTERM, _stop)
    try:
        warm_runs = []
        for i, precision in enumerate(precisions):
            cache = os.path.join(cache_root, precision)  # empty: this process compiles
            spec = dict(base, precision=precision, cache_dir=cache, full=True)
            answer = run_child(args, "keras", spec, work, f"ours_{precision}", "jax")
            results["ours"][precision] = answer
            results["compilation"][f"{precision}, empty cache (cold)"] = answer
            warm = (precision, dict(spec, full=False))
            if i == 0:
                _warm_run(args, results, work, *warm)
            elif args.warm_bf16 and precision == "mixed_bfloat16":
                warm_runs.append(warm)  # after theirs: the optional part goes last
        config = next((a["config"] for a in results["ours"].values() if a), None)
        modes = [m for m in args.torch_modes.split(",") if m]
        if modes and config:
            results["theirs"] = run_child(args, "torch", dict(base, config=config,
                                                              modes=modes),
                                          work, "theirs_torch", "torch")
        for warm in warm_runs:
            _warm_run(args, results, work, *warm)
    except KeyboardInterrupt:
        print("--- stopped: reporting what was measured", flush=True)
        results["stopped"] = True
    report(args, results)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=1)
        print(f"\nwrote {args.output}")
    if results.get("stopped"):
        raise SystemExit("stopped before the end")
    failed = [k for k, v in {**results["ours"], **results["compilation"],
                             "theirs": results.get("theirs", True)}.items() if v is None]
    if failed:
        raise SystemExit(f"failed: {failed}")


if __name__ == "__main__":
    main()
