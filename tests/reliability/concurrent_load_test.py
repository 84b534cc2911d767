"""The classifier and SQuAD exports under concurrent load (issue 15 §5), at CI size:
`benchmarks/concurrent_load.py` itself with 2 threads in one serving process, then 2
serving processes (TensorFlow and TF Text's ops only), a few seconds each. Every
answer must be the single-threaded one; throughput, latency and memory are measured
(finite numbers) but never judged here: the full-length run is the benchmark's.

The checks that make a pass mean something are tested on their own: a wrong answer
or an exception is counted, answers differ between the requests of the set (an answer
delivered to the wrong request would show), and the comparison of references that
travelled through JSON is exact.
"""

import json
import math
import sys

import numpy as np
import pytest

from benchmarks import concurrent_load as load
from keras_bert_app import names

REFERENCES_FILE = "requests_and_references.json"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The benchmark at CI size: (exit status, its JSON, its work directory)."""
    work = tmp_path_factory.mktemp("concurrent_load")
    output = work / "result.json"
    status = load.main([
        "--threads=2", "--processes=2", "--seconds=2", "--warmup_seconds=0.5",
        "--requests=16", "--quiet_wait=0", f"--work_dir={work}", f"--output={output}"])
    with open(output) as f:
        return status, json.load(f), work


def test_concurrent_threads_and_processes_answer_as_one_thread_does(run):
    status, result, _ = run
    rows = {(r["export"], r["processes"], r["threads"]): r for r in result["rows"]}
    assert sorted(rows) == [("classifier", 1, 2), ("classifier", 2, 1),
                            ("squad", 1, 2), ("squad", 2, 1)]
    for key, row in rows.items():
        assert (row["errors"], row["mismatches"]) == (0, 0), (key, row["examples_kept"])
        assert row["requests"] > 0, key
        # Warm-up: every thread of every process answered the whole set once at least.
        assert row["warmup_requests"] >= 16 * row["processes"] * row["threads"], key
        assert len(row["per_process"]) == row["processes"], key
    assert status == 0 and result["passed"]


def test_throughput_latency_and_memory_are_measured(run):
    _, result, _ = run
    for row in result["rows"]:
        for key in ("requests_per_s", "examples_per_s", "latency_p50_ms",
                    "latency_p99_ms", "rss_start_mb", "rss_end_mb",
                    "rss_slope_mb_per_min"):
            assert isinstance(row[key], (int, float)) and math.isfinite(row[key]), key
        assert row["rss_start_mb"] > 0 and row["latency_p99_ms"] >= row["latency_p50_ms"]
        assert all(p["rss_samples"] >= 2 for p in row["per_process"])


def test_answers_differ_between_requests_so_a_misdelivered_one_would_show(run):
    _, _, work = run
    with open(work / REFERENCES_FILE) as f:
        inputs = json.load(f)
    for name, output in (("classifier", names.PROBABILITIES), ("squad", names.SCORE)):
        rows = np.concatenate([load.decode(r[output]) for r in inputs[name]["references"]])
        assert len(np.unique(rows, axis=0)) > len(rows) // 2, name
    batches = [len(r[names.CONTEXT]) for r in inputs["squad"]["requests"]]
    assert batches == list(range(1, 17))
    longest = max(len(c) for r in inputs["squad"]["requests"] for c in r[names.CONTEXT])
    assert longest > 3000  # contexts of many windows are in the load


def test_references_compare_exactly_after_travelling_through_json(run):
    import tensorflow as tf

    _, result, work = run
    with open(work / REFERENCES_FILE) as f:
        inputs = json.load(f)
    signature = tf.saved_model.load(result["exports"]["squad"]).signatures[
        "serving_default"]
    request = inputs["squad"]["requests"][3]
    reference = load.decode(inputs["squad"]["references"][3])
    answer = load.call(signature, request)
    assert load.difference(reference, answer) is None
    answer[names.SCORE] += np.float32(1e-4) * np.maximum(1, np.abs(answer[names.SCORE]))
    assert f"{names.SCORE}[0]" in load.difference(reference, answer)


def test_a_wrong_answer_is_a_mismatch_and_an_exception_an_error():
    requests = [{"text": ["a"]}, {"text": ["b", "c"]}, {"text": ["d"]}]
    references = [{"label": np.array([b"x"], object), "p": np.array([0.5], np.float32)},
                  {"label": np.array([b"y", b"z"], object),
                   "p": np.array([0.25, 0.75], np.float32)},
                  {"label": np.array([b"w"], object), "p": np.array([1.0], np.float32)}]

    def serve(request):
        index = next(i for i, r in enumerate(requests) if r is request)
        if index == 2:
            raise ValueError("broken")
        answer = {k: v.copy() for k, v in references[index].items()}
        if index == 1:
            answer["label"][1] = b"y"  # another request's label
        return answer

    stats = load.run_load(serve, requests, references, threads=2, seconds=0, rounds=2)
    assert stats["requests"] == 2 * 2 * 3
    assert (stats["errors"], stats["mismatches"]) == (4, 4)
    assert stats["examples"] == 2 * 2 * 4
    kinds = {(e["kind"], e["request"]) for e in stats["examples_kept"]}
    assert kinds <= {("errors", 2), ("mismatches", 1)} and len(kinds) == 2
    exact = load.run_load(lambda r: references[requests.index(r)], requests, references,
                          threads=3, seconds=0, rounds=1)
    assert (exact["errors"], exact["mismatches"], exact["requests"]) == (0, 0, 9)


def test_the_comparison_rules():
    strings = {"a": np.array([b"x", b"y"], object)}
    assert load.difference(strings, {"a": np.array([b"x", b"y"], object)}) is None
    assert "a[1]" in load.difference(strings, {"a": np.array([b"x", b"y "], object)})
    ints = {"i": np.array([3, -1], np.int32)}
    assert "i[0]" in load.difference(ints, {"i": np.array([2, -1], np.int32)})
    assert "outputs" in load.difference(ints, {"j": np.array([3, -1], np.int32)})
    assert "i:" in load.difference(ints, {"i": np.array([3, -1, 0], np.int32)})
    floats = {"f": np.array([0.5, 2000.0, -np.inf, np.nan], np.float32)}
    close = np.array([0.5 + 9e-7, 2000.0 + 1.5e-3, -np.inf, np.nan], np.float32)
    assert load.difference(floats, {"f": close}) is None
    for row, value in ((0, 0.5 + 3e-6), (1, 2000.0 + 4e-3), (2, np.inf), (3, 0.0)):
        far = floats["f"].copy()
        far[row] = value
        assert f"f[{row}]" in load.difference(floats, {"f": far}), row


def test_memory_slope_is_least_squares_in_mb_per_minute():
    samples = [(t, 800.0 + 0.1 * t + (0.5 if t % 2 else -0.5)) for t in range(0, 61)]
    figures = load.memory_figures(samples)
    assert figures["rss_slope_mb_per_min"] == pytest.approx(6.0, abs=0.05)
    assert (figures["rss_start_mb"], figures["rss_end_mb"]) == (799.5, 805.5)
    assert load.memory_figures([(0.0, 900.0)])["rss_slope_mb_per_min"] == 0.0


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
