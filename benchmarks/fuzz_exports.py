"""Fuzzes every text-in serving signature at benchmark size (issue 15 §1).

    python benchmarks/fuzz_exports.py --inputs=100000 --output=fuzz.json
    python benchmarks/fuzz_exports.py --atheris --seconds=600 --output=atheris.json

Builds each export once from a tiny random model (tests/fuzz/targets.py), then sends
it generated requests and checks every answer with the invariants of the CI fuzz
tests (tests/fuzz/strategies.py). Default mode: hypothesis-generated batches (hostile
Unicode, invalid UTF-8, vocabulary words), at least `--inputs` strings per signature;
a failure is counted and recorded, and generation goes on. `--atheris`: libFuzzer
(atheris) mutates raw bytes into requests for `--seconds` per signature, each
signature in its own process (a crash of one does not stop the others; an abort or
a signal counts as a failure).

Prints one row per signature: inputs tried, failures, inputs/s; `--output` gets the
table and the first failures (input, error) as JSON.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.fuzz.targets import SIGNATURES  # noqa: E402  (after the path)

KEPT_FAILURES = 20  # per signature, in the JSON


def record(failures, inputs, error):
    if len(failures) < KEPT_FAILURES:
        failures.append({"inputs": {k: [repr(t) for t in v] for k, v in inputs.items()},
                         "error": "".join(traceback.format_exception_only(error)).strip(),
                         "traceback": traceback.format_exc()[-2000:]})


def run_hypothesis(target, count, batch_size, seed):
    """At least `count` strings in batches of up to `batch_size`; returns the row."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    from tests.fuzz import strategies as fz

    pairs = len(target.input_names) == 2
    batch = st.integers(1, batch_size).flatmap(lambda n: st.tuples(
        st.lists(fz.byte_texts(), min_size=n, max_size=n),
        st.lists(fz.byte_texts(16), min_size=n, max_size=n) if pairs else st.none()))
    state = {"inputs": 0, "failures": 0, "examples": []}

    def one_batch(texts_and_others):
        texts, others = texts_and_others
        inputs = target.inputs(texts, others)
        state["inputs"] += len(texts)
        try:
            target.check(inputs, target.call(inputs))
        except Exception as error:  # noqa: BLE001  (every failure is counted)
            state["failures"] += 1
            record(state["examples"], inputs, error)

    start = time.perf_counter()
    # Runs of a few thousand examples (one seed each) until the count is reached.
    for run in range(10**6):
        left = count - state["inputs"]
        if left <= 0:
            break
        examples = min(2000, max(1, 2 * left // (batch_size + 1) + 1))
        hypothesis_seed(seed * 1000 + run)(settings(
            max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
            suppress_health_check=list(HealthCheck))(given(batch)(one_batch)))()
    seconds = time.perf_counter() - start
    return {"signature": target.name, "mode": "hypothesis", "inputs": state["inputs"],
            "failures": state["failures"], "seconds": round(seconds, 1),
            "inputs_per_s": round(state["inputs"] / seconds, 1),
            "examples": state["examples"]}


def atheris_child(name, seconds, output):
    """Runs in its own process: atheris.Fuzz over one signature until `seconds`
    have passed, then writes the row to `output` and exits."""
    import atheris

    with atheris.instrument_imports():
        from tests.fuzz import strategies  # noqa: F401  (the checks get coverage)
    from tests.fuzz.targets import load_targets

    target = load_targets([name])[name]
    state = {"inputs": 0, "failures": 0, "examples": []}
    deadline = time.monotonic() + seconds
    start = time.perf_counter()

    def finish():
        elapsed = time.perf_counter() - start
        with open(output, "w") as f:
            json.dump({"signature": name, "mode": "atheris", "inputs": state["inputs"],
                       "failures": state["failures"], "seconds": round(elapsed, 1),
                       "inputs_per_s": round(state["inputs"] / elapsed, 1),
                       "examples": state["examples"]}, f)
        os._exit(0)  # libFuzzer would run on; the row is written

    def one_input(data):
        if time.monotonic() > deadline:
            finish()
        provider = atheris.FuzzedDataProvider(data)
        texts = []
        for _ in range(provider.ConsumeIntInRange(1, 8)):
            if provider.ConsumeBool():
                texts.append(provider.ConsumeBytes(provider.ConsumeIntInRange(0, 64)))
            else:
                texts.append(provider.ConsumeUnicodeNoSurrogates(
                    provider.ConsumeIntInRange(0, 48)).encode("utf-8"))
        inputs = target.inputs(texts)
        state["inputs"] += len(texts)
        try:
            target.check(inputs, target.call(inputs))
        except Exception as error:  # noqa: BLE001
            state["failures"] += 1
            record(state["examples"], inputs, error)

    atheris.Setup([sys.argv[0], f"-max_total_time={int(seconds) + 60}",
                   "-rss_limit_mb=16000", "-print_final_stats=0"], one_input)
    atheris.Fuzz()


def run_atheris(name, seconds):
    with tempfile.TemporaryDirectory() as scratch:
        output = os.path.join(scratch, "row.json")
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), f"--atheris_child={name}",
             f"--seconds={seconds}", f"--output={output}"],
            capture_output=True, text=True, cwd=scratch)
        if os.path.exists(output):
            with open(output) as f:
                return json.load(f)
    # The process died (abort, signal, out of memory): one failure, its last words.
    return {"signature": name, "mode": "atheris", "inputs": None, "failures": 1,
            "seconds": seconds, "inputs_per_s": None,
            "examples": [{"error": f"exit status {proc.returncode}",
                          "traceback": proc.stderr[-3000:]}]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--signatures", default=",".join(SIGNATURES),
                        help=f"comma-separated, of {', '.join(SIGNATURES)}")
    parser.add_argument("--inputs", type=int, default=100_000,
                        help="generated strings per signature (hypothesis mode)")
    parser.add_argument("--batch_size", type=int, default=16,
                        help="largest request batch (hypothesis mode)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--atheris", action="store_true",
                        help="atheris.Fuzz for --seconds per signature instead")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--output", help="JSON file for the table and failures")
    parser.add_argument("--atheris_child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.atheris_child:
        return atheris_child(args.atheris_child, args.seconds, args.output)
    names = [n for n in args.signatures.split(",") if n]
    unknown = sorted(set(names) - set(SIGNATURES))
    if unknown:
        parser.error(f"--signatures: unknown {unknown}; expected some of {SIGNATURES}")

    rows = []
    if args.atheris:
        rows = [run_atheris(name, args.seconds) for name in names]
    else:
        from tests.fuzz.targets import load_targets

        targets = load_targets(names)
        rows = [run_hypothesis(targets[name], args.inputs, args.batch_size, args.seed)
                for name in names]
    print(f"{'signature':<16} {'mode':<10} {'inputs':>9} {'failures':>8} {'inputs/s':>9}")
    for row in rows:
        print(f"{row['signature']:<16} {row['mode']:<10} {str(row['inputs']):>9} "
              f"{row['failures']:>8} {str(row['inputs_per_s']):>9}")
    for row in rows:
        for example in row["examples"][:3]:
            print(f"\n{row['signature']}: {example['error']}\n  inputs: "
                  f"{json.dumps(example.get('inputs'))[:500]}")
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"mode": "atheris" if args.atheris else "hypothesis",
                       "seed": args.seed, "rows": rows}, f, indent=1)
    return 1 if any(row["failures"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
