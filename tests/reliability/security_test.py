"""Security (issue 15 §4): no pickle or code execution anywhere in the package and
pipelines (checked statically); what a run writes in a model directory is JSON, text,
HDF5 weights, TFRecords or TensorBoard events (checked by content after a tiny run);
every exported SavedModel type holds no op that touches files, the network or Python
at serving time (on top of `serving_ops.check_serving_ops`, which every export runs);
config and metadata files are parsed as JSON only, and a model directory's other files
are never imported nor unpickled."""

import ast
import json
import os
import pickle
import re
import shutil
import sys

import keras
import pytest
from tensorflow.core.protobuf import saved_model_pb2

import keras_bert_app as kba
from keras_bert_app import names
from keras_bert_app.data import PretrainingDataConfig, create_pretraining_data
from keras_bert_app.data.input_format import masked_crc32c
from keras_bert_app.export import (check_serving_ops, core_op_types, export_encoder,
                                   export_multiple_choice, saved_model_op_types)
from keras_bert_app.export.tf_serving_ops import DENIED_OPS, LOAD_TIME_OPS
from keras_bert_app.model_dir import save_task_dir
from keras_bert_app.models import BertEncoder, BertMultipleChoice
from keras_bert_app.task_config import TaskConfig
from keras_bert_app.text.text_config import TextConfig
from keras_bert_app.training.pretraining import PretrainingRunConfig, run_pretraining
from tests.helpers import SHAKESPEARE_VOCAB, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCANNED = ("keras_bert_app", "pipelines")

# -- 1. static scan of the source ---------------------------------------------------------

_UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill",
                   "cloudpickle", "joblib", "runpy"}
_UNSAFE_BUILTINS = {"eval", "exec", "compile", "__import__"}  # not `model.compile()`
_UNSAFE_CALLS = {"read_pickle", "enable_unsafe_deserialization", "spec_from_file_location",
                 "SourceFileLoader", "Lambda"}  # keras Lambda layers save bytecode
# Lazy imports of the package's own modules, from names in a constant table.
_IMPORT_MODULE_ALLOWED = {"keras_bert_app/__init__.py", "keras_bert_app/training/__init__.py"}


def _keyword(call, name):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node):
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_uses(source, filename="<source>"):
    """`(line, what)` for each unsafe use in Python `source`: imports of pickle-like
    modules, eval/exec and code loading, `yaml.load`, `np.load(allow_pickle=True)`,
    `torch.load` without `weights_only=True`, `load_model(..., safe_mode=<not True>)`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) \
                else [node.module or ""]
            for module in modules:
                if module.split(".")[0] in _UNSAFE_MODULES:
                    found.append((node.lineno, f"import {module}"))
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = getattr(func.value, "id", getattr(func.value, "attr", "")) \
            if isinstance(func, ast.Attribute) else ""
        if name in _UNSAFE_CALLS or (name in _UNSAFE_BUILTINS and (
                isinstance(func, ast.Name) or owner == "builtins")):
            found.append((node.lineno, f"{name}()"))
        elif name in ("load", "unsafe_load", "full_load") and owner == "yaml":
            found.append((node.lineno, f"yaml.{name}()"))
        elif name == "load" and owner in ("np", "numpy") and \
                _keyword(node, "allow_pickle") is not None and \
                not (isinstance(_keyword(node, "allow_pickle"), ast.Constant)
                     and _keyword(node, "allow_pickle").value is False):
            found.append((node.lineno, "np.load(allow_pickle=...)"))
        elif name == "load" and owner == "torch" and \
                not _is_true(_keyword(node, "weights_only")):
            found.append((node.lineno, "torch.load without weights_only=True"))
        elif name == "load_model" and _keyword(node, "safe_mode") is not None and \
                not _is_true(_keyword(node, "safe_mode")):
            found.append((node.lineno, "load_model(safe_mode=<not True>)"))
        elif name == "import_module" and filename not in _IMPORT_MODULE_ALLOWED:
            found.append((node.lineno, "importlib.import_module()"))
    return found


def _sources():
    for top in SCANNED:
        for directory, _, files in os.walk(os.path.join(REPO, top)):
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    yield os.path.relpath(path, REPO), path


def test_the_scanner_finds_each_unsafe_use_and_passes_the_safe_forms():
    unsafe = """
import pickle
from marshal import loads
import yaml, numpy as np, torch, keras
eval("1")
exec("x = 1")
yaml.load(f)
np.load(f, allow_pickle=True)
torch.load(f)
torch.load(f, weights_only=False)
keras.saving.load_model(p, safe_mode=False)
keras.models.load_model(p, safe_mode=flag)
keras.config.enable_unsafe_deserialization()
keras.layers.Lambda(lambda x: x)
importlib.import_module(name)
"""
    assert sorted(line for line, _ in unsafe_uses(unsafe)) == [2, 3] + list(range(5, 16))
    safe = """
import json, re, yaml, numpy as np, torch, keras
re.compile("x")
super().compile(optimizer="adam")
yaml.safe_load(f)
np.load(f)
np.load(f, allow_pickle=False)
torch.load(f, weights_only=True)
keras.saving.load_model(p)
keras.models.load_model(p, safe_mode=True)
json.load(f)
"""
    assert unsafe_uses(safe) == []


def test_the_package_and_pipelines_use_no_pickle_eval_or_unsafe_loading():
    sources = list(_sources())
    assert len(sources) > 50  # the walk found the package
    found = {rel: uses for rel, path in sources
             if (uses := unsafe_uses(open(path, encoding="utf-8").read(), rel))}
    assert found == {}


# -- 2. what a run writes ----------------------------------------------------------------------

_HDF5 = b"\x89HDF\r\n\x1a\n"
_TABLE_MAGIC = bytes.fromhex("57fb808b247547db")  # a TF checkpoint index (an SSTable)


def _tfrecord_framed(path):
    """Every record of `path` framed as TFRecords, with valid length CRCs."""
    with open(path, "rb") as f:
        data = f.read()
    offset = 0
    while offset < len(data):
        header = data[offset:offset + 12]
        length = int.from_bytes(header[:8], "little")
        if len(header) < 12 or masked_crc32c(header[:8]) != int.from_bytes(header[8:],
                                                                            "little"):
            return False
        offset += 12 + length + 4
    return offset == len(data)


def file_kind(path):
    """What `path` is, by its content (and, for raw variable data, its place in a
    SavedModel); "UNKNOWN ..." otherwise, "PICKLE" for a pickle."""
    name = os.path.basename(path)
    with open(path, "rb") as f:
        data = f.read()
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "PICKLE"
    if data.startswith(_HDF5):
        return "hdf5"
    if name.endswith(".json"):
        json.loads(data.decode("utf-8"))
        return "json"
    if name.startswith("events.out.tfevents.") or name.endswith(".tfrecord") or \
            name == "tf_serving_warmup_requests":  # PredictionLogs as TFRecords
        return "tfrecords" if _tfrecord_framed(path) else "UNKNOWN (bad TFRecord framing)"
    if name in ("saved_model.pb", "fingerprint.pb"):
        return "protobuf"
    if name == "variables.index" and data.endswith(_TABLE_MAGIC):
        return "checkpoint index"
    if name.startswith("variables.data-") and os.path.basename(
            os.path.dirname(path)) == "variables":
        return "variable data"
    if b"\x00" not in data:
        data.decode("utf-8")
        return "text"
    return f"UNKNOWN ({data[:8]!r})"


def _kinds(directory):
    return {os.path.relpath(os.path.join(d, f), directory): file_kind(os.path.join(d, f))
            for d, _, files in os.walk(directory) for f in files}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A model directory written by a 2-step pre-training run with evaluation."""
    root = tmp_path_factory.mktemp("run")
    with open(os.path.join(REPO, "demo_data", "shakespeare.txt"), encoding="utf-8") as f:
        (root / "corpus.txt").write_text("\n".join(f.read().splitlines()[:200]) + "\n")
    create_pretraining_data(PretrainingDataConfig(
        input_files=(str(root / "corpus.txt"),), output_files=(str(root / "a.tfrecord"),),
        vocab_file=SHAKESPEARE_VOCAB, max_seq_length=32, max_predictions_per_seq=5,
        dupe_factor=1), verbose=0)
    model_dir = root / "model"
    run_pretraining(PretrainingRunConfig(
        input_file=str(root / "a.tfrecord"), model_dir=str(model_dir),
        bert_config=tiny_config(vocab_size=927), vocab_file=SHAKESPEARE_VOCAB,
        do_lower_case=True, train_batch_size=8, num_train_steps=2, num_warmup_steps=1,
        save_checkpoints_steps=2, log_steps=2, do_eval=True, eval_batch_size=8,
        max_eval_steps=1, verbose=0))
    return model_dir


def test_a_model_directory_holds_only_json_text_hdf5_and_event_files(pretrained):
    kinds = _kinds(pretrained)
    assert {"model.weights.h5", names.BERT_CONFIG_FILE, "pretraining_run.json",
            "eval_results.json"} <= set(kinds)
    assert any(k.startswith(os.path.join("checkpoints", "ckpt-")) for k in kinds)
    assert any("events.out.tfevents." in k for k in kinds)
    assert set(kinds.values()) <= {"json", "text", "hdf5", "tfrecords"}, kinds


def test_the_file_check_tells_a_pickle_and_other_binaries(tmp_path):
    (tmp_path / "model.weights.h5").write_bytes(pickle.dumps({"w": [1.0]}))
    (tmp_path / "weights.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 20)
    kinds = _kinds(tmp_path)
    assert kinds["model.weights.h5"] == "PICKLE"
    assert kinds["weights.npz"].startswith("UNKNOWN")


# -- 3. exported SavedModels --------------------------------------------------------------------

class _Trap:
    """Unpickling it creates the file `sentinel`."""

    def __init__(self, sentinel):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (open, (self.sentinel, "w"))


def _booby_trap(directory, sentinel):
    """Files that would leave `sentinel` behind if anything imported, executed or
    unpickled them."""
    code = f"open({str(sentinel)!r}, 'w').close()\n"
    for name in ("evil.py", "__init__.py", "bert_config.py", "model.py"):
        with open(os.path.join(directory, name), "w") as f:
            f.write(code)
    for name in ("model.pkl", "model.keras", "optimizer.pkl"):
        with open(os.path.join(directory, name), "wb") as f:
            f.write(pickle.dumps(_Trap(sentinel)))


EXPORT_TYPES = ("preprocessing", "encoder", "classifier", "squad", "ner", "embedder",
                "multiple_choice")


@pytest.fixture(scope="module")
def exports(pretrained, tmp_path_factory):
    from tests.fuzz.targets import build

    root = str(tmp_path_factory.mktemp("exports"))
    paths = {name: build(root, name) for name in ("preprocessing", "classifier", "squad",
                                                   "ner", "embedder")}
    # The encoder is exported from a copy of the run's directory with files that must
    # never be imported or unpickled (see test_unexpected_files_...).
    trapped = os.path.join(root, "trapped_model")
    shutil.copytree(pretrained, trapped)
    _booby_trap(trapped, os.path.join(root, "RAN"))
    paths["encoder"] = export_encoder(os.path.join(root, "encoder"), trapped)
    paths["trapped"], paths["sentinel"] = trapped, os.path.join(root, "RAN")
    keras.utils.set_random_seed(0)
    choice_dir = os.path.join(root, "choice_model")
    save_task_dir(choice_dir, BertMultipleChoice(BertEncoder(tiny_config(vocab_size=927))),
                  SHAKESPEARE_VOCAB, TextConfig.for_vocab(SHAKESPEARE_VOCAB, True),
                  TaskConfig(task=names.MULTIPLE_CHOICE_TASK, heads=[names.CHOICE_HEAD],
                             max_seq_length=24))
    paths["multiple_choice"] = export_multiple_choice(os.path.join(root, "choice"),
                                                      choice_dir)
    return paths


# Op names that say "file, network, Python, logging or checkpoint": every core op of
# TF whose name matches is denied, allowed only at load time, or reviewed below.
_IO_NAMES = re.compile(r"Reader|File|PyFunc|Rpc|Summary|Print|Save|Restore|Checkpoint|"
                       r"Debug|Collective|Record|CSV|Sql|LMDB|Snapshot|DataService|Send|"
                       r"Recv|Remote|Matching|Immutable|Dump|Gcs|^Load")
_REVIEWED_FAMILIES = {  # prefix: why ops of the family touch nothing outside the host
    "Xla": "XLA/TPU device and host transfers inside one machine",
    "_Xla": "XLA device and host transfers inside one machine",
    "_Nccl": "GPU-to-GPU collectives inside one machine",
    "LoadTPUEmbedding": "loads embedding tables into TPU memory",
    "LoadAllTPUEmbedding": "loads embedding tables into TPU memory",
    "RecvTPUEmbedding": "TPU embedding activations, on the device",
    "SendTPUEmbedding": "TPU embedding gradients, on the device",
}
_REVIEWED = {  # core ops that match _IO_NAMES and touch nothing outside the process
    **dict.fromkeys(["AudioSummary", "AudioSummaryV2", "HistogramSummary", "ImageSummary",
                     "MergeSummary", "ScalarSummary", "TensorSummary", "TensorSummaryV2",
                     "BoostedTreesMakeStatsSummary", "ExperimentalStatsAggregatorSummary",
                     "StatsAggregatorSummary"],
                    "builds a Summary proto as a string tensor; writes nothing"),
    "SummaryWriter": "creates a writer resource; the Write*/Create* ops that use it "
                     "are denied",
    **dict.fromkeys(["IdentityReader", "IdentityReaderV2"], "reads no file"),
    **dict.fromkeys([op for op in ("ReaderNumRecordsProduced", "ReaderNumWorkUnitsCompleted",
                                   "ReaderRead", "ReaderReadUpTo", "ReaderReset",
                                   "ReaderRestoreState", "ReaderSerializeState")
                     for op in (op, op + "V2")],
                    "drives a reader resource; every file reader op is denied"),
    **dict.fromkeys(["ShardedFilename", "ShardedFilespec"], "formats a string"),
    "DecodeCSV": "parses a string tensor",
    "Snapshot": "copies a tensor",
    **dict.fromkeys(["DebugGradientIdentity", "DebugGradientRefIdentity"],
                    "identity in the backward pass"),
    "DeleteRpcFutureResource": "frees a resource",
    "BoostedTreesExampleDebugOutputs": "computes tensors",
}
# Ops that cross process or machine boundaries, or read checkpoints: a review found the
# denylist missing them (the test below keeps them there).
_SHOULD_BE_DENIED = {"CollectivePermute", "RemoteCall", "Send", "Recv", "_Send", "_Recv",
                     "_HostSend", "_HostRecv", "DTensorRestoreV2"}


def _reviewed(op):
    return op in _REVIEWED or op.startswith(tuple(_REVIEWED_FAMILIES))


def _io_ops(ops):
    """The ops of `ops` that may touch files, the network or Python."""
    return {op for op in ops if op in DENIED_OPS or op in LOAD_TIME_OPS or
            op in _SHOULD_BE_DENIED or (_IO_NAMES.search(op) and not _reviewed(op))}


@pytest.mark.parametrize("export_type", EXPORT_TYPES)
def test_an_export_holds_no_op_that_touches_files_the_network_or_python(exports,
                                                                         export_type):
    path = exports[export_type]
    check_serving_ops(path)  # raises naming the op and function
    used = saved_model_op_types(path)
    io_ops = {(place, op) for place, ops in used.items() for op in _io_ops(ops)}
    # Checkpoint reads and writes only, and only inside the saver's own functions.
    assert {op for _, op in io_ops} <= LOAD_TIME_OPS, io_ops
    assert all("_traced_save_" in place or "_traced_restore_" in place
               for place, _ in io_ops), io_ops
    kinds = _kinds(path)
    assert "saved_model.pb" in kinds and "PICKLE" not in kinds.values()
    assert not any(k.startswith("UNKNOWN") for k in kinds.values()), kinds
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(open(os.path.join(path, "saved_model.pb"), "rb").read())
    assert saved_model.meta_graphs  # a SavedModel proto, not something named like one


def test_every_core_op_named_for_io_is_denied_load_time_or_reviewed():
    """A TensorFlow upgrade that adds, say, a `FooFileReader` op fails here until the
    op is denied or reviewed."""
    named = {op for op in core_op_types() if _IO_NAMES.search(op)}
    assert len(named) > 100  # the pattern still finds TF's I/O ops
    unexplained = {op for op in named if op not in DENIED_OPS and op not in LOAD_TIME_OPS
                   and not _reviewed(op)} - _SHOULD_BE_DENIED
    assert unexplained == set()


def test_ops_that_cross_processes_or_read_checkpoints_are_denied():
    assert _SHOULD_BE_DENIED - {"DTensorRestoreV2"} <= set(DENIED_OPS)
    assert "DTensorRestoreV2" in LOAD_TIME_OPS


# -- 4. model directories: JSON only, nothing else run ---------------------------------------

def test_unexpected_files_in_a_model_directory_are_never_run(exports):
    """evil.py, __init__.py, model.pkl, a pickled "model.keras" … beside the model: the
    export read the directory (see the fixture), and so do the loaders."""
    from keras_bert_app.text.tokenizer import BertTokenizer

    kba.load_pretrainer(exports["trapped"])
    kba.load_encoder(exports["trapped"])
    BertTokenizer.from_model_dir(exports["trapped"])
    assert os.path.isfile(os.path.join(exports["encoder"], "saved_model.pb"))
    assert not os.path.exists(exports["sentinel"])
    # The traps are armed: unpickling one does leave the file.
    with open(os.path.join(exports["trapped"], "model.pkl"), "rb") as f:
        pickle.loads(f.read()).close()
    assert os.path.exists(exports["sentinel"])
    os.remove(exports["sentinel"])


_NOT_JSON = {
    "python": "{{'vocab_size': __import__('os').system('touch {s}')}}",
    "yaml": "vocab_size: !!python/object/apply:os.system ['touch {s}']\n",
}


def _load_text_side(model_dir):
    from keras_bert_app.text.tokenizer import BertTokenizer

    BertTokenizer.from_model_dir(model_dir)


_READERS = {names.BERT_CONFIG_FILE: kba.load_pretrainer,
            names.TASK_CONFIG_FILE: kba.load_pretrainer,
            names.TEXT_CONFIG_FILE: _load_text_side}


@pytest.mark.parametrize("file_name", sorted(_READERS))
@pytest.mark.parametrize("payload", [
    "python", "yaml", "pickle"])
def test_config_files_are_parsed_as_json_only(pretrained, tmp_path, file_name, payload):
    model_dir = tmp_path / "model"
    shutil.copytree(pretrained, model_dir)
    sentinel = tmp_path / "RAN"
    if payload == "pickle":
        (model_dir / file_name).write_bytes(pickle.dumps(_Trap(sentinel)))
    else:
        (model_dir / file_name).write_text(_NOT_JSON[payload].format(s=sentinel))
    try:
        with pytest.raises(ValueError, match=re.escape(file_name)):
            _READERS[file_name](str(model_dir))
    finally:
        assert not sentinel.exists()


def test_pretraining_metadata_is_parsed_as_json_only(tmp_path):
    from keras_bert_app.data import read_metadata

    (tmp_path / "a.tfrecord").write_bytes(b"")
    sentinel = tmp_path / "RAN"
    (tmp_path / names.PRETRAINING_METADATA_FILE).write_text(
        _NOT_JSON["python"].format(s=sentinel))
    with pytest.raises(ValueError, match=f"{names.PRETRAINING_METADATA_FILE} is not valid "
                                         "JSON"):
        read_metadata(str(tmp_path / "*.tfrecord"))
    assert not sentinel.exists()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
