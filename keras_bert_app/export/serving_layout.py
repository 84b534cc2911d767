"""What TF Serving needs of an export: the `EXPORT_DIR/<version>/` layout, warm-up
requests, and variables it can restore.

`tensorflow_model_server --model_base_path=EXPORT_DIR` serves the highest integer-named
subdirectory of EXPORT_DIR (and picks up a new one while running). Before a version
takes traffic, the server replays `<version>/assets.extra/tf_serving_warmup_requests`,
a TFRecord file of `PredictionLog` protos, so that the first real requests do not pay
for lazy initialisation.
"""

import contextlib
import os

import keras
import numpy as np
import tensorflow as tf

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
SERVING_DEFAULT = "serving_default"
# TF Serving reads at most this many warm-up records (its kMaxNumRecords).
MAX_WARMUP_RECORDS = 1000

# Warm-up examples when the caller gives none: real sentences, short ones and one that
# fills 128 tokens, so that short and full-length padded shapes both run once.
WARMUP_TEXTS = (
    "A gripping, beautifully acted film.",
    "The plot wanders, but the last half hour is worth the wait.",
    "I expected much more from a director whose earlier work I admired; the dialogue "
    "is stilted, the pacing drags through the middle act, and by the time the story "
    "finally reaches its long-promised confrontation I had stopped caring about any of "
    "the characters, which is a shame, because the cast clearly gave it everything "
    "they had and the photography of the coastal town is often breathtaking.",
)
WARMUP_PAIRS = (
    ("The company reported higher profits this quarter.",
     "Quarterly profits at the company rose."),
    ("A man is playing a guitar on stage.", "Nobody is making any music."),
    ("The committee will meet again next week to discuss the budget, which several "
     "members have criticised as unrealistic given the expected fall in revenue.",
     "The budget will be discussed by the committee next week."),
)


def existing_versions(export_base):
    """The integer-named subdirectories of `export_base`, as sorted ints. Anything else
    there (a README, a `.N.writing-…` scratch directory of an export in progress) is
    not a version: TF Serving ignores it, and so do we."""
    export_base = os.fspath(export_base)
    if not os.path.isdir(export_base):
        return []
    return sorted(int(name) for name in os.listdir(export_base)
                  if name.isdigit() and name.isascii()
                  and os.path.isdir(os.path.join(export_base, name)))


def next_version_dir(export_base):
    """`export_base/<n>`, n the next free version: one more than the highest existing
    integer-named subdirectory, 1 for a new or empty base."""
    export_base = os.fspath(export_base)
    if os.path.exists(export_base) and not os.path.isdir(export_base):
        raise ValueError(f"export_path {export_base} is a file; it must be the directory "
                         "TF Serving reads versions from (--model_base_path).")
    versions = existing_versions(export_base)
    return os.path.join(export_base, str(versions[-1] + 1 if versions else 1))


def warmup_file(version_dir):
    return os.path.join(os.fspath(version_dir), WARMUP_DIR, WARMUP_FILE)


def write_warmup_requests(version_dir, requests, signature_name=SERVING_DEFAULT):
    """Writes `requests` as TF Serving warm-up records into `version_dir`.

    Args:
        version_dir: the SavedModel directory (a version, or the scratch directory it
            is written in before it moves into place).
        requests: a list of dicts, input name → array-like (a list of `str` becomes
            a string tensor), each one `PredictRequest` for `signature_name`.
        signature_name: the signature the requests call.

    Returns:
        The path of the warm-up file.
    """
    # Imported here: only exports need the serving protos (tensorflow-serving-api).
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    requests = list(requests)
    if not requests or len(requests) > MAX_WARMUP_RECORDS:
        raise ValueError(f"{len(requests)} warm-up requests; TF Serving replays 1 to "
                         f"{MAX_WARMUP_RECORDS}.")
    path = warmup_file(version_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(signature_name=signature_name))
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(_array(value)))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def text_warmup_requests(text_inputs, warmup_texts=None):
    """Warm-up requests for a signature of string inputs `text_inputs` (one, or a
    pair): one request per example, then one with all of them (so both the batch-1
    and the batched shapes are traced before traffic). `warmup_texts`: strings, or
    (text_a, text_b) pairs for two inputs; None: `WARMUP_TEXTS` / `WARMUP_PAIRS`."""
    pairs = len(text_inputs) == 2
    examples = list(warmup_texts if warmup_texts is not None else
                    WARMUP_PAIRS if pairs else WARMUP_TEXTS)
    if not examples:
        raise ValueError("warmup_texts is empty; give at least one example (or None).")
    rows = []
    for example in examples:
        row = tuple(example) if pairs and isinstance(example, (list, tuple)) else \
            (example,)
        if len(row) != len(text_inputs) or not all(isinstance(t, str) for t in row):
            raise ValueError(f"Warm-up example {example!r}: expected "
                             + ("a (text_a, text_b) pair of strings." if pairs
                                else "a string."))
        rows.append(row)
    requests = [{name: [text] for name, text in zip(text_inputs, row)} for row in rows]
    if len(rows) > 1:
        requests.append({name: [row[i] for row in rows]
                         for i, name in enumerate(text_inputs)})
    return requests


def _array(value):
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, (str, bytes)) for v in value):
        # A string tensor: UTF-8 bytes, as TF Serving's REST API would send them.
        return np.array([v.encode("utf-8") if isinstance(v, str) else v for v in value],
                        dtype=object)
    return np.asarray(value)


def check_tensorflow_backend(what):
    """SavedModels are TensorFlow graphs: an export traces the Keras model with
    `tf.function`, which only a model built on the TensorFlow backend supports."""
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"{what} needs the TensorFlow Keras backend; this process "
                         f"runs {keras.backend.backend()!r}. Run the export with "
                         "KERAS_BACKEND=tensorflow (pipelines.export_savedmodel sets it).")


# The options every export saves with; its functions are traced under the same ones
# (`traced_for_saving`), so that the save finds them traced.
SAVE_OPTIONS = tf.saved_model.SaveOptions()


@contextlib.contextmanager
def traced_for_saving():
    """Traces `tf.function`s as `save_export` will look them up.

    `tf.saved_model.save` gets every function of the object again inside its save
    context, and a `tf.function`'s cache key says whether it was traced in one (the
    context's variable policy). The exports trace functions before the save (the
    serving function, to find the variables it reads; the encoder's calls with and
    without training; the preprocessing export's `bert_pack_inputs` signatures), and
    the save traced each of them a second time: for a MiniLM classifier the save took
    2.33 s with the second trace, 1.16 s without (benchmarks/RESULTS.md, "Export wall
    time"). Traced in here, under the same options, they are found in the cache. This
    enters TensorFlow's private `save_context`; tests/export/saving_test.py pins that
    exports trace their functions once, and that TensorFlow retraces outside the
    context, so an upgrade that changes either fails there.
    """
    from tensorflow.python.saved_model import save_context

    with save_context.save_context(SAVE_OPTIONS):
        yield


def save_export(module, directory):
    """`tf.saved_model.save` of an export module with its `serve` function as the
    `serving_default` signature, under `SAVE_OPTIONS`."""
    tf.saved_model.save(module, directory, signatures={SERVING_DEFAULT: module.serve},
                        options=SAVE_OPTIONS)


def serving_variables(*concrete_functions):
    """The `tf.Variable`s that `concrete_functions` read, to be tracked by the exported
    object so that the SavedModel's saver restores them.

    A Keras 3 variable wraps a `tf.Variable`. Tracked as a Keras object (a Keras model
    set as an attribute of the exported module) it is saved for `tf.saved_model.load`,
    but the saver that graph-mode loaders run does not restore its handle in the
    serving graph: `saved_model_cli run` fails with "Could not find variable …", and
    TF Serving's C++ loader restores through the same saver. Keras' own `ExportArchive`
    tracks the captured `tf.Variable`s instead, as the exports here do; tracking both
    would save every weight twice. (tests/export/*_savedmodel_test.py pin both.)
    """
    found = {}
    for concrete in concrete_functions:
        for variable in concrete.variables:
            found.setdefault(id(variable), variable)
    return list(found.values())
