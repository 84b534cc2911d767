"""Runs requests through exported SavedModels in a process set up like a serving one:
TensorFlow plus the TF Text op kernels that TF Serving 2.19 links, and nothing else.

    python tests/export/tf_only_check.py REQUEST.json RESULT.json

The tests call `run_check`, which runs this file in a fresh interpreter. There,
before TensorFlow loads, `keras`, `keras_hub` and our package are made unimportable
(`sys.modules[name] = None`), so a SavedModel that needed any of them fails to load.
TF Text's ops are registered from its op libraries directly: its Python package
imports Keras (its `keras` layers subclass `tf.keras.layers.Layer`), which a serving
process does not have. The libraries of the ops that tensorflow-text 2.12.1 lacks
(the round-robin trimmer, `Utf8Binarize`) are left out, so an export that used them
fails here as it would in TF Serving 2.19.

Every `serving_default` request runs twice: through the eagerly loaded signature
(`tf.saved_model.load`) and through a TF1 session that loads the SavedModel's
`graph_def`, restores its variables with its saver and feeds the signature's tensors:
the way TF Serving's C++ loader runs a model.

Request file: `{"models": {name: path}, "cases": [{"id", "model", "call":
"serving_default" | "__call__" | "mlm", "inputs": {name: encoded}, "training":
false}], "warmup": [model names], "describe": [model names]}`. Tensors are encoded as
`{"dtype", "shape", "value"}`, strings as base64 in `"b64"` (any bytes survive JSON).
"""

import base64
import json
import os
import subprocess
import sys

import numpy as np

BLOCKED_MODULES = ("keras", "tf_keras", "keras_hub", "keras_nlp", "keras_bert_app")
# Neither is in a serving process; TensorFlow's import takes JAX's `jit` when it is
# installed (TF Lite's util, guarded): ~0.3-0.5 s of every check's start-up.
NOT_IN_A_SERVING_PROCESS = ("jax", "jaxlib")
# tensorflow-text op libraries whose ops tensorflow-text 2.12.1 (TF Serving <= 2.19)
# does not have: TFText>RoundRobinTrim, TFText>RoundRobinGenerateMasks,
# TFText>Utf8Binarize (keras_bert_app/export/tf_serving_ops.py).
NOT_IN_TF_TEXT_2_12_1 = ("_trimmer_ops.so", "_utf8_binarize_op.so")


# ------------------------------------------------------------------ the test side


def encode(value):
    """A NumPy value, or a list of strings / bytes (an empty list: no strings), as
    JSON."""
    array = np.asarray(value, dtype=object if _is_text(value) else None)
    if array.dtype == object or array.dtype.kind in "SU":
        flat = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in
                array.reshape(-1)]
        return {"dtype": "string", "shape": list(array.shape),
                "b64": [base64.b64encode(v).decode("ascii") for v in flat]}
    return {"dtype": array.dtype.name, "shape": list(array.shape),
            "value": array.reshape(-1).tolist()}


def decode(encoded):
    """The NumPy value of `encode`'s JSON (strings as bytes); lists and dicts of them
    decode element-wise."""
    if isinstance(encoded, list):
        return [decode(e) for e in encoded]
    if "dtype" not in encoded:
        return {k: decode(v) for k, v in encoded.items()}
    if encoded["dtype"] == "string":
        flat = np.array([base64.b64decode(v) for v in encoded["b64"]] or [], dtype=object)
        return flat.reshape(encoded["shape"])
    return np.array(encoded["value"], dtype=encoded["dtype"]).reshape(encoded["shape"])


def _is_text(value):
    if not isinstance(value, (list, tuple)):
        return False
    flat = np.asarray(value, dtype=object).reshape(-1)
    return flat.size == 0 or any(isinstance(v, (str, bytes)) for v in flat)


def run_check(request, work_dir):
    """Runs this script on `request` (a dict as above, inputs as NumPy values or lists)
    in a fresh interpreter whose working directory is `work_dir`; returns the result
    with every tensor decoded."""
    request = dict(request)
    request["cases"] = [dict(case, inputs={k: encode(v) for k, v in case["inputs"].items()})
                        for case in request.get("cases", [])]
    request_file = os.path.join(work_dir, "tf_only_request.json")
    result_file = os.path.join(work_dir, "tf_only_result.json")
    with open(request_file, "w") as f:
        json.dump(request, f)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), request_file,
                           result_file], capture_output=True, text=True, timeout=600,
                          cwd=work_dir, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(result_file) as f:
        result = json.load(f)
    for case in result["cases"].values():
        for way, answer in case.items():
            if "outputs" in answer:
                case[way] = {"outputs": decode(answer["outputs"])}
    for info in result["describe"].values():
        for attribute in ("label_names", "max_seq_length", "do_lower_case"):
            if attribute in info:
                info[attribute] = decode(info[attribute])
    for records in result["warmup"].values():
        for record in records:
            record["outputs"] = decode(record["outputs"])
    return result


# ------------------------------------------------------------ the serving process


def block_modules():
    for name in BLOCKED_MODULES + NOT_IN_A_SERVING_PROCESS:
        sys.modules[name] = None  # `import name` raises ImportError from now on


def register_tf_text_ops(tf):
    import glob
    import importlib.util

    # find_spec of a top-level package locates it without running its __init__.
    root = importlib.util.find_spec("tensorflow_text").submodule_search_locations[0]
    loaded = []
    for library in sorted(glob.glob(os.path.join(root, "python", "*", "_*.so"))):
        if os.path.basename(library) not in NOT_IN_TF_TEXT_2_12_1:
            tf.load_op_library(library)
            loaded.append(os.path.basename(library))
    return loaded


def _to_json(tree):
    if isinstance(tree, dict):
        return {k: _to_json(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_to_json(v) for v in tree]
    return encode(tree.numpy() if hasattr(tree, "numpy") else tree)


def _answer(run):
    try:
        return {"outputs": _to_json(run())}
    except Exception as error:  # reported, and judged by the test
        return {"error": type(error).__name__, "message": str(error)[:3000]}


class _Session:
    """A SavedModel loaded as TF Serving loads it: graph_def, saver restore, init op."""

    def __init__(self, tf, path):
        self._tf = tf
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            self.meta_graph = tf.compat.v1.saved_model.loader.load(
                self.session, ["serve"], path)

    def run(self, signature_name, inputs):
        signature = self.meta_graph.signature_def[signature_name]
        feed = {signature.inputs[k].name: v for k, v in inputs.items()}
        fetch = {k: t.name for k, t in signature.outputs.items()}
        return self.session.run(fetch, feed_dict=feed)


def _describe(model):
    signatures = {}
    for name, function in model.signatures.items():
        inputs = function.structured_input_signature[1]
        signatures[name] = {
            "inputs": {k: [s.dtype.name, s.shape.as_list()] for k, s in inputs.items()},
            "outputs": sorted(function.structured_outputs)}
    info = {"signatures": signatures}
    for attribute in ("variables", "trainable_variables", "regularization_losses"):
        if hasattr(model, attribute):
            info[attribute] = len(getattr(model, attribute))
    for attribute in ("label_names", "max_seq_length", "do_lower_case"):
        if hasattr(model, attribute):
            info[attribute] = _to_json(getattr(model, attribute).read_value())
    info["has_mlm"] = hasattr(model, "mlm")
    if hasattr(model, "vocab_file"):
        with open(model.vocab_file.asset_path.numpy().decode(), encoding="utf-8") as f:
            info["vocab_size"] = len(f.read().splitlines())
    return info


def _replay_warmup(tf, model, path):
    from tensorflow_serving.apis import prediction_log_pb2

    records = []
    warmup = os.path.join(path, "assets.extra", "tf_serving_warmup_requests")
    for record in tf.data.TFRecordDataset(warmup):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        signature = model.signatures[request.model_spec.signature_name]
        outputs = signature(**{k: tf.constant(v) for k, v in inputs.items()})
        records.append({"signature": request.model_spec.signature_name,
                        "inputs": {k: list(v.shape) for k, v in inputs.items()},
                        "outputs": _to_json(outputs)})
    return records


def main(request_file, result_file):
    block_modules()
    import tensorflow as tf

    libraries = register_tf_text_ops(tf)
    with open(request_file) as f:
        request = json.load(f)
    models = {name: tf.saved_model.load(path) for name, path in request["models"].items()}
    sessions = {}
    cases = {}
    for case in request.get("cases", []):
        model, call = models[case["model"]], case["call"]
        inputs = {k: decode(v) for k, v in case["inputs"].items()}
        tensors = {k: tf.constant(v, tf.string if v.dtype == object else None)
                   for k, v in inputs.items()}
        if call == "serving_default":
            if case["model"] not in sessions:
                sessions[case["model"]] = _Session(tf, request["models"][case["model"]])
            session = sessions[case["model"]]
            cases[case["id"]] = {
                "eager": _answer(lambda: model.signatures[call](**tensors)),
                "session": _answer(lambda: session.run(call, inputs))}
        else:
            function = model if call == "__call__" else getattr(model, call)
            cases[case["id"]] = {"eager": _answer(
                lambda: function(tensors, training=case.get("training", False)))}
    result = {
        "cases": cases,
        "warmup": {name: _replay_warmup(tf, models[name], request["models"][name])
                   for name in request.get("warmup", [])},
        "describe": {name: _describe(models[name]) for name in request.get("describe", [])},
        "text_op_libraries": libraries,
        # Real modules only: the blocked names map to None.
        "modules": sorted(k for k, v in sys.modules.items() if v is not None and
                          k.split(".")[0] in BLOCKED_MODULES + ("tensorflow_text",)),
    }
    with open(result_file, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
