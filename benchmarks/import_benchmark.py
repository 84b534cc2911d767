"""Start-up imports, each in a fresh process: TensorFlow as our pipelines import it
against torch + transformers as the Hugging Face script imports them (issue 19).

Every pipeline process, every test target and every child process a test starts
pays its imports before any work. Rows, each timed in `--repeats` fresh processes
(interleaved, so a drifting machine affects all rows alike):

- `ml_dtypes`: `import numpy, ml_dtypes` (TensorFlow and JAX import it first thing);
- `tensorflow (pipelines)`: `pipelines.frameworks.import_frameworks()`, TensorFlow and
  Keras without JAX, scikit-learn and matplotlib, as every pipeline starts;
- `tensorflow (plain)`: `import tensorflow`, as a user's script starts;
- `torch + transformers`: what benchmarks/hf_sst2_script.py imports.

Each process prints the seconds its imports took (after the interpreter started);
the table gives medians and ranges of those and of the whole process (launch to
exit). `--other_site=DIR` prepends DIR to PYTHONPATH for a second set of rows, e.g. a
`pip install --no-deps --target DIR ml_dtypes==0.7.0` to compare the release that
pyproject.toml's pin avoids:

    .venv/bin/python benchmarks/import_benchmark.py --repeats 5 \\
        --other_site=/tmp/ml_dtypes_0.7.0 --output=/tmp/imports.json
"""

import argparse
import json
import os
import statistics
import sys
import tempfile

from harness import REPO, Runs, load

SNIPPETS = {
    "ml_dtypes": "import numpy, ml_dtypes",
    "tensorflow (pipelines)": "from pipelines.frameworks import import_frameworks\n"
                              "import_frameworks()",
    "tensorflow (plain)": "import tensorflow",
    "torch + transformers": "import torch, transformers\n"
                            "from transformers import AutoModelForSequenceClassification",
}
# Times the snippet inside the process and prints the versions that decide it.
CHILD = """import time
start = time.perf_counter()
{snippet}
seconds = time.perf_counter() - start
import importlib.metadata as md
versions = {{n: md.version(n) for n in ("ml_dtypes", "numpy")}}
print("IMPORT_SECONDS", seconds, versions)
"""


def parse_flags():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quiet_wait", type=float, default=20.0,
                        help="seconds to wait, at most, for idle CPUs before each run")
    parser.add_argument("--other_site", default=None,
                        help="a folder put first on PYTHONPATH for a second set of rows")
    parser.add_argument("--output", default=None, help="JSON file for the figures")
    return parser.parse_args()


def read_child(log_path):
    """`(import seconds, versions)` from a child's log."""
    with open(log_path) as f:
        for line in f:
            if "IMPORT_SECONDS" in line:
                _, _, rest = line.partition("IMPORT_SECONDS ")
                seconds, _, versions = rest.partition(" ")
                return float(seconds), versions.strip()
    raise SystemExit(f"{log_path}: the child printed no IMPORT_SECONDS line")


def summary(values):
    return {"median": round(statistics.median(values), 2),
            "min": round(min(values), 2), "max": round(max(values), 2)}


def main():
    flags = parse_flags()
    sites = {"installed": None}
    if flags.other_site:
        sites[f"with {flags.other_site}"] = os.path.abspath(flags.other_site)
    runs = Runs(flags.quiet_wait, os.path.abspath(__file__))
    work = tempfile.mkdtemp(prefix="import_benchmark_")
    samples = {}  # (site, row) -> {"import": [...], "process": [...], "versions": str}
    base_path = os.environ.get("PYTHONPATH", "")
    for repeat in range(flags.repeats):
        for site_index, (site, folder) in enumerate(sites.items()):
            os.environ["PYTHONPATH"] = os.pathsep.join(
                p for p in [folder, REPO, base_path] if p)
            for row_index, (row, snippet) in enumerate(SNIPPETS.items()):
                log = os.path.join(work, f"{repeat}_{site_index}_{row_index}.log")
                seconds = runs.run([sys.executable, "-c", CHILD.format(snippet=snippet)],
                                   log)
                imported, versions = read_child(log)
                entry = samples.setdefault((site, row), {"import": [], "process": []})
                entry["import"].append(imported)
                entry["process"].append(seconds)
                entry["versions"] = versions
    if base_path:
        os.environ["PYTHONPATH"] = base_path
    else:
        os.environ.pop("PYTHONPATH")

    print(f"\nImports in fresh processes, {flags.repeats} repeats (median, min-max "
          f"seconds); load now {load()}")
    print(f"{'site':<28} {'imports':<24} {'import s':>18} {'process s':>18}  versions")
    results = []
    for (site, row), entry in samples.items():
        imp, proc = summary(entry["import"]), summary(entry["process"])
        print(f"{site:<28} {row:<24} {imp['median']:>6.2f} ({imp['min']:.2f}-"
              f"{imp['max']:.2f}) {proc['median']:>6.2f} ({proc['min']:.2f}-"
              f"{proc['max']:.2f})  {entry['versions']}")
        results.append({"site": site, "imports": row, "import_s": imp,
                        "process_s": proc, "versions": entry["versions"]})
    noisy = {k: v for k, v in runs.noise.items() if v["other_processes_cores"] > 0.2}
    if noisy:
        print(f"runs with other processes busy (> 0.2 cores): {len(noisy)}")
    if flags.output:
        with open(flags.output, "w") as f:
            json.dump({"repeats": flags.repeats, "rows": results, "noise": runs.noise},
                      f, indent=2)


if __name__ == "__main__":
    main()
