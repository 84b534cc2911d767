"""Checks that a SavedModel loads and serves in stock TF Serving (2.19 and later).

The op types are read from `saved_model.pb` itself, so the check sees every graph the
server would import: each meta graph's `graph_def` and every function of its library
(the signatures', the saver's, and those of the object graph that TF Serving imports too).
"""

import contextlib
import functools
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from keras_bert_app.export.tf_serving_ops import (DENIED_OPS, DESCRIPTOR_OPS,
                                                  LOAD_TIME_OPS, LOCAL_DESCRIPTORS,
                                                  TF_TEXT_2_12_1_OPS)
from keras_bert_app.files import user_cache_dir

GRAPH_DEF = "graph_def"
_INIT_OP_SIGNATURE = "__saved_model_init_op"
# Ops every TensorFlow registers: a cached list without them is not a list of TF core ops.
_SENTINEL_OPS = frozenset({"AddV2", "Const", "MatMul", "StatefulPartitionedCall",
                           "SaveV2", "RestoreV2"})

# Optional packages TensorFlow's and Keras' imports take when installed; none registers
# a TensorFlow op (the same 1,910 ops), and without them the listing took 3.0-3.5 s
# instead of 4.8-6.0 s on 2 cores. The pipelines hide the same ones
# (pipelines/frameworks.py; tests/export/serving_ops_test.py compares the lists).
OPTIONAL_IMPORTS = ("jax", "jaxlib", "sklearn", "matplotlib")

# Run in a fresh interpreter: `import tensorflow_text` (done by our package) registers its
# ops in the op registry of this process, so only a process that imports tensorflow alone
# tells TF core ops from TF Text ops. TF_GetAllOpList is the C API's list of the registry
# that `op_def_registry.get` reads (no public Python API lists it).
_CORE_OPS_SCRIPT = f"""
import json
import sys
for name in {OPTIONAL_IMPORTS!r}:
    sys.modules[name] = None
import tensorflow
from tensorflow.core.framework import op_def_pb2
from tensorflow.python.client import pywrap_tf_session
ops = op_def_pb2.OpList.FromString(
    pywrap_tf_session.TF_GetBuffer(pywrap_tf_session.TF_GetAllOpList()))
print("CORE_OPS=" + json.dumps(sorted(op.name for op in ops.op)))
"""


def _read_saved_model(export_dir):
    path = os.path.join(os.fspath(export_dir), "saved_model.pb")
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"{path} does not exist: {export_dir} is not a SavedModel.")
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as f:
        saved_model.ParseFromString(f.read())
    return saved_model


def _called_functions(node):
    """Names of the functions a NodeDef calls (`f` of a call, If/While branches, …)."""
    for attr in node.attr.values():
        if attr.func.name:
            yield attr.func.name
        for func in attr.list.func:
            yield func.name


def _load_time(meta_graph):
    """The `graph_def` nodes and library functions that run once, at load: those that
    the saver's save/restore nodes and the `__saved_model_init_op` depend on."""
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    functions = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    roots = [meta_graph.saver_def.save_tensor_name, meta_graph.saver_def.restore_op_name]
    init = meta_graph.signature_def.get(_INIT_OP_SIGNATURE)
    if init is not None:
        roots += [t.name for t in init.outputs.values()]
    for key in ("saved_model_main_op", "legacy_init_op"):  # TF1 SavedModels
        if key in meta_graph.collection_def:
            roots += list(meta_graph.collection_def[key].node_list.value)
    load_nodes, load_functions = set(), set()
    pending = [name.lstrip("^").split(":")[0] for name in roots if name]
    while pending:  # graph nodes, through data and control inputs
        name = pending.pop()
        if name in nodes and name not in load_nodes:
            load_nodes.add(name)
            pending += [i.lstrip("^").split(":")[0] for i in nodes[name].input]
    pending = [f for n in load_nodes for f in _called_functions(nodes[n])]
    while pending:  # then functions, through the functions they call
        name = pending.pop()
        if name in functions and name not in load_functions:
            load_functions.add(name)
            pending += [f for node in functions[name].node_def
                        for f in _called_functions(node)]
    return load_nodes, load_functions


def _places(saved_model):
    """(place, op type, runs only at load time, NodeDef) for every node of every meta graph;
    a place is `graph_def` or a function name (prefixed by the tags if there are several
    meta graphs)."""
    several = len(saved_model.meta_graphs) > 1
    for meta_graph in saved_model.meta_graphs:
        prefix = ",".join(meta_graph.meta_info_def.tags) + "/" if several else ""
        load_nodes, load_functions = _load_time(meta_graph)
        for node in meta_graph.graph_def.node:
            yield prefix + GRAPH_DEF, node.op, node.name in load_nodes, node
        for function in meta_graph.graph_def.library.function:
            name = function.signature.name
            for node in function.node_def:
                yield prefix + name, node.op, name in load_functions, node


def saved_model_op_types(export_dir):
    """The op types of a SavedModel: `{place: set of op types}`, place being `graph_def`
    (each meta graph's top-level graph) or the name of a function of its library."""
    op_types = {}
    for place, op_type, _, _ in _places(_read_saved_model(export_dir)):
        op_types.setdefault(place, set()).add(op_type)
    return op_types


@functools.lru_cache(maxsize=1)
def core_op_types():
    """Every op type that `import tensorflow` alone registers (TF core), as listed by a
    child process with this interpreter and environment (~3 s), kept in the user's
    cache for this TensorFlow installation (`_core_ops_cache_file`): later exports,
    in any process, read it instead."""
    cache_file = _core_ops_cache_file()
    cached = _read_core_ops(cache_file)
    if cached is not None:
        return cached
    # TensorFlow's backend: the script hides JAX, which a JAX backend's Keras would need.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    proc = subprocess.run([sys.executable, "-c", _CORE_OPS_SCRIPT], capture_output=True,
                          text=True, env=env, timeout=600)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("CORE_OPS=")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError("Could not list TF core ops in a tensorflow-only process: "
                           + proc.stderr[-2000:])
    ops = json.loads(lines[-1][len("CORE_OPS="):])
    _write_core_ops(cache_file, ops)
    return frozenset(ops)


def _core_ops_cache_file():
    """`<user cache>/tf_core_ops/<key>.json`, the key a digest of what decides the
    list: TensorFlow's version and folder, and the size and time of every shared
    library that `import tensorflow` may load (its own and pluggable devices'); None
    when that cannot be told."""
    package = os.path.dirname(os.path.realpath(tf.__file__))
    # The folders whose `tensorflow-plugins` libraries `import tensorflow` loaded, as
    # TensorFlow itself listed them (private; pinned by tests/export/serving_ops_test.py).
    site_folders = getattr(tf, "_site_packages_dirs", None)
    if not isinstance(site_folders, list):
        return None  # no key for what TensorFlow loaded: list the ops every time
    libraries = sorted(
        glob.glob(os.path.join(package, "*.so*")) +
        glob.glob(os.path.join(package, "python", "*.so*")) +
        glob.glob(os.path.join(package, "core", "kernels", "*.so*")) +
        [path for folder in site_folders
         for path in glob.glob(os.path.join(folder, "tensorflow-plugins", "*.so*"))])
    stats = []
    for path in libraries:
        try:
            info = os.stat(path)
        except OSError:
            continue
        stats.append([path, info.st_size, info.st_mtime_ns])
    key = json.dumps([tf.__version__, tf.__git_version__, package, stats,
                      os.environ.get("TF_PLUGGABLE_DEVICE_LIBRARY_PATH", "")])
    return user_cache_dir("tf_core_ops",
                          hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")


def _read_core_ops(path):
    """The cached list, or None when absent or not what `_write_core_ops` writes (a
    damaged file is listed again, never trusted)."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(value, dict):
        return None
    ops = value.get("core_ops")
    if value.get("tensorflow") != tf.__version__ or not isinstance(ops, list) or \
            not all(isinstance(op, str) for op in ops) or not _SENTINEL_OPS <= set(ops):
        return None
    return frozenset(ops)


def _write_core_ops(path, ops):
    """Writes the list atomically; a cache that cannot be written is skipped (the
    next export lists the ops again)."""
    if path is None:
        return
    partial = f"{path}.partial-{uuid.uuid4().hex}"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(partial, "w", encoding="utf-8") as f:
            json.dump({"tensorflow": tf.__version__, "core_ops": sorted(ops)}, f)
        os.replace(partial, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(partial)


def check_serving_ops(export_dir, described_as=None):
    """Raises ValueError unless the SavedModel at `export_dir` loads and serves in stock
    TF Serving 2.19 (and later): every op type a TF core op or a TF Text op of
    tensorflow-text 2.12.1, none that touches files, the network or Python, and
    checkpoint/asset I/O only where it runs once at load (see tf_serving_ops.py).

    The one-line message names each offending op type, why, and the functions (or
    `graph_def`) it is in; `described_as` replaces "the SavedModel at EXPORT_DIR" there.
    Returns the sorted TF Text op types the SavedModel uses.
    """
    places = list(_places(_read_saved_model(export_dir)))
    unknown = {op for _, op, _, _ in places} - TF_TEXT_2_12_1_OPS - core_op_types()
    problems = {}  # (op type, why) -> places
    for place, op, load_time, node in places:
        if op in unknown:
            why = ("is neither a TF core op nor a TF Text op of tensorflow-text 2.12.1 "
                   "(which TF Serving <= 2.19 links)")
        elif op in DENIED_OPS:
            why = DENIED_OPS[op]
        elif op in LOAD_TIME_OPS and not load_time:
            why = "does checkpoint/asset I/O outside the saver and init functions"
        elif (op in DESCRIPTOR_OPS and "descriptor_source" in node.attr
              and node.attr["descriptor_source"].s != LOCAL_DESCRIPTORS):
            why = (f"reads proto descriptors from "
                   f"{node.attr['descriptor_source'].s.decode(errors='replace')!r} on "
                   "every call")
        else:
            continue
        problems.setdefault((op, why), set()).add(place)
    if problems:
        found = "; ".join(f"{op} {why} (in {_some(where)})"
                          for (op, why), where in sorted(problems.items()))
        raise ValueError(f"{described_as or f'The SavedModel at {export_dir}'} would not "
                         f"load or serve in stock TF Serving: {found}.")
    return sorted({op for _, op, _, _ in places} & TF_TEXT_2_12_1_OPS)


def _some(names, shown=3):
    names = sorted(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


@contextlib.contextmanager
def checked_export_dir(export_path):
    """Yields a scratch directory beside `export_path` to write a SavedModel into; when
    the block ends, checks it with `check_serving_ops` and only then moves it to
    `export_path`. On any error nothing is left at `export_path` nor beside it.

    An `export_path` that exists must be empty or hold a SavedModel (which is replaced).
    """
    export_path = os.path.abspath(os.fspath(export_path))
    if os.path.isdir(export_path) and os.listdir(export_path) and not os.path.exists(
            os.path.join(export_path, "saved_model.pb")):
        raise ValueError(f"export_path {export_path} is a non-empty directory without a "
                         "saved_model.pb; not overwriting it.")
    if os.path.exists(export_path) and not os.path.isdir(export_path):
        raise ValueError(f"export_path {export_path} is a file, not a directory.")
    parent, base = os.path.split(export_path)
    os.makedirs(parent, exist_ok=True)
    # os.mkdir, not tempfile.mkdtemp: the export keeps the umask's permissions (mkdtemp's
    # 0700 would hide it from a server running as another user).
    scratch = os.path.join(parent, f".{base}.writing-{uuid.uuid4().hex}")
    os.mkdir(scratch)
    try:
        yield scratch
        check_serving_ops(scratch,
                          described_as=f"The export to {export_path} (not written)")
        _move_into_place(scratch, export_path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _move_into_place(new, export_path):
    """Renames `new` to `export_path`, replacing what is there only once `new` is in."""
    if not os.path.exists(export_path):
        os.rename(new, export_path)
        return
    old = f"{new}.old"
    os.rename(export_path, old)
    try:
        os.rename(new, export_path)
    except OSError:
        os.rename(old, export_path)
        raise
    shutil.rmtree(old)
