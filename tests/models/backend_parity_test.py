"""The same weights give the same outputs on the tensorflow, jax and torch backends.

Each backend runs in its own process (Keras picks its backend at import). The first
process builds the models and saves weights; every process loads them and computes
outputs on the same inputs.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

BACKENDS = ("tensorflow", "jax", "torch")

WORKER = textwrap.dedent("""
    import sys
    import keras
    import numpy as np
    from keras_bert_app import names
    from keras_bert_app.models import BertEncoder, BertPretrainer
    from tests.helpers import encoder_batch, tiny_config, to_numpy

    weights_path, out_path, build_weights = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    keras.utils.set_random_seed(0)
    # ALBERT factorisation and the tanh GELU exercise every code path.
    config = tiny_config(embedding_size=16, hidden_act="gelu_approximate")
    model = BertPretrainer(BertEncoder(config))
    x = encoder_batch(batch=3, seq=11, lengths=[11, 7, 3], seed=5)
    x[names.MASKED_LM_POSITIONS] = np.array([[1, 2], [3, 6], [0, 2]], "int32")
    if build_weights:
        model.save_weights(weights_path)
    model.load_weights(weights_path)
    outputs = to_numpy(model(x))
    encoded = to_numpy(model.encoder({k: x[k] for k in names.ENCODER_INPUTS}))
    np.savez(out_path, mlm=outputs[names.MLM_LOGITS], nsp=outputs[names.NSP_LOGITS],
             sequence=encoded[names.SEQUENCE_OUTPUT], pooled=encoded[names.POOLED_OUTPUT])
    print("backend", keras.backend.backend())
""")


def _backend_available(backend):
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    try:
        __import__(module)
        return True
    except ImportError:
        return False


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
                    reason="runs all three backends itself; once is enough")
def test_same_weights_same_outputs_on_every_backend(tmp_path):
    missing = [b for b in BACKENDS if not _backend_available(b)]
    if missing:
        pytest.skip(f"backends not installed: {missing} (pip install -e '.[test]')")
    repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    weights = tmp_path / "model.weights.h5"
    results = {}
    for i, backend in enumerate(BACKENDS):
        env = dict(os.environ, KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="",
                   PYTHONPATH=os.pathsep.join([repo_root, os.environ.get("PYTHONPATH", "")]))
        out = tmp_path / f"{backend}.npz"
        proc = subprocess.run(
            [sys.executable, "-c", WORKER, str(weights), str(out), "1" if i == 0 else "0"],
            env=env, cwd=repo_root, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{backend} worker failed:\n{proc.stderr[-3000:]}"
        assert f"backend {backend}" in proc.stdout
        results[backend] = dict(np.load(out))
    for backend in BACKENDS[1:]:
        for key, reference in results["tensorflow"].items():
            np.testing.assert_allclose(results[backend][key], reference, rtol=0, atol=1e-5,
                                       err_msg=f"{key} differs on {backend}")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
