"""Fault injection for the reliability tests and `benchmarks/kill_trials.py`: a
pipeline started as a child process, killed with SIGKILL at a chosen moment (after
some seconds, when a line appears in its output, or while a checkpoint file is being
written), or run with a file-size limit so that a write fails as on a full disk; and
the checks afterwards (which checkpoints are there, are they readable, final weights).
"""

import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time

import h5py
import numpy as np

from keras_bert_app import names

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECKPOINT = re.compile(r"^ckpt-(\d+)\.weights\.h5$")
# CheckpointManager writes `.partial-ckpt-<step>.weights.h5`, then renames it.
PARTIAL_CHECKPOINT = re.compile(r"^\.partial-ckpt-(\d+)\.weights\.h5$")


def _limit_file_size(max_bytes):
    """A `preexec_fn`: no file this process writes may grow past `max_bytes`. With
    SIGXFSZ ignored the write fails with EFBIG instead of killing the process, as a
    full disk makes it fail with ENOSPC (pipes are not limited: the output still
    comes back)."""

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return limit


class Child:
    """`python -m pipelines.<name> <flags>` (or `python <script> <args>` with
    `script`), its output collected line by line as it runs.

    Args:
        name: the pipeline module under `pipelines/`.
        flags: its command-line flags.
        max_file_bytes: a file-size limit (RLIMIT_FSIZE) standing for a full disk.
        env: more environment variables (e.g. TF_CONFIG).
        script: run this Python file instead of a pipeline; `flags` are its argv.
    """

    def __init__(self, name, flags, max_file_bytes=None, env=None, script=None):
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [REPO, os.environ.get("PYTHONPATH", "")]))
        environment.pop("TF_CONFIG", None)
        environment["PYTHONUNBUFFERED"] = "1"  # lines as printed: moments are read from them
        environment.update(env or {})
        command = [sys.executable, script] if script else \
            [sys.executable, "-m", f"pipelines.{name}"]
        self.command = command + [str(f) for f in flags]
        self.lines = []
        self.process = subprocess.Popen(
            self.command, cwd=REPO, env=environment, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace",
            preexec_fn=_limit_file_size(max_file_bytes) if max_file_bytes else None)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self):
        return "".join(self.lines)

    def running(self):
        return self.process.poll() is None

    def kill(self):
        """SIGKILL now (a no-op once it has ended); waits for it."""
        if self.running():
            self.process.send_signal(signal.SIGKILL)
        return self.wait()

    def wait(self, timeout=600):
        """Waits for the end; returns the exit status (negative: killed by a signal)."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.command} ran past {timeout}s:\n"
                                 f"{self.output[-3000:]}") from None
        self._reader.join(timeout=10)
        return self.process.returncode

    def kill_when(self, moment, timeout=600, poll=0.001):
        """SIGKILLs the child at the first poll where `moment()` is true. Returns True
        if it was killed, False if it ended on its own first."""
        deadline = time.monotonic() + timeout
        while self.running():
            if moment():
                self.process.send_signal(signal.SIGKILL)
                self.wait()
                return True
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"no kill moment within {timeout}s:\n"
                                     f"{self.output[-3000:]}")
            time.sleep(poll)
        self.wait()
        return False


# Moments to kill at: functions of nothing, true once the moment has come.

def after_seconds(seconds):
    start = time.monotonic()
    return lambda: time.monotonic() - start >= seconds


def when_output_has(child, text):
    return lambda: text in child.output


def seconds_after_output(child, text, seconds):
    """True from `seconds` after `text` first appeared in `child`'s output on."""
    seen = []

    def moment():
        if not seen:
            if text in child.output:
                seen.append(time.monotonic())
            return False
        return time.monotonic() - seen[0] >= seconds

    return moment


def when_checkpoint_exists(checkpoint_dir, step):
    path = os.path.join(checkpoint_dir, f"ckpt-{step}.weights.h5")
    return lambda: os.path.exists(path)


def while_checkpoint_is_written(checkpoint_dir):
    """True while a `.partial-ckpt-*` file is in `checkpoint_dir`: the checkpoint is
    being written (a kill leaves it half-written)."""

    def writing():
        try:
            return any(PARTIAL_CHECKPOINT.match(n) for n in os.listdir(checkpoint_dir))
        except FileNotFoundError:
            return False

    return writing


def checkpoint_steps(checkpoint_dir):
    """Steps of the complete (renamed) checkpoints, ascending."""
    if not os.path.isdir(checkpoint_dir):
        return []
    found = (CHECKPOINT.match(n) for n in os.listdir(checkpoint_dir))
    return sorted(int(m.group(1)) for m in found if m)


def partial_checkpoints(checkpoint_dir):
    if not os.path.isdir(checkpoint_dir):
        return []
    return sorted(n for n in os.listdir(checkpoint_dir) if PARTIAL_CHECKPOINT.match(n))


def read_weights(path):
    """Every dataset of a Keras weights file (`.weights.h5`), by its path in the file;
    raises if the file cannot be read to the end."""
    arrays = {}

    def keep(name, item):  # returns None: a value would stop visititems
        if isinstance(item, h5py.Dataset):
            arrays[name] = item[()]

    with h5py.File(path, "r") as f:
        f.visititems(keep)
    if not arrays:
        raise ValueError(f"{path} holds no arrays")
    return arrays


def unreadable_checkpoints(checkpoint_dir):
    """`{name: error}` of the complete checkpoints that cannot be read in full."""
    bad = {}
    for step in checkpoint_steps(checkpoint_dir):
        path = os.path.join(checkpoint_dir, f"ckpt-{step}.weights.h5")
        try:
            read_weights(path)
        except Exception as error:  # any failure to read is the finding
            bad[os.path.basename(path)] = f"{type(error).__name__}: {error}"
    return bad


def max_abs_diff(expected, actual):
    """The largest absolute difference over the arrays of two weights files' contents
    (their layouts must match)."""
    if sorted(expected) != sorted(actual):
        missing = sorted(set(expected) ^ set(actual))
        raise AssertionError(f"weights files differ in layout: {missing[:5]}")
    return max(float(np.max(np.abs(np.asarray(expected[k], np.float64) -
                                   np.asarray(actual[k], np.float64))))
               if np.size(expected[k]) else 0.0 for k in expected)


def logged_steps(model_dir):
    """Steps at which `logs/train` holds scalars: the intervals the run finished (a
    record torn by a kill ends the reading of its file)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    directory = os.path.join(model_dir, names.TRAIN_LOGS_DIR)
    steps = set()
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        try:
            for event in EventFileLoader(os.path.join(directory, name)).Load():
                if event.summary.value:
                    steps.add(event.step)
        except Exception:  # a torn last record: what came before it counts
            pass
    return sorted(steps)


def kill_trial(start, model_dir, moment, num_steps, save_steps, reference=None,
               max_resumes=5):
    """One trial: `start()` (a `Child` running the command), SIGKILLed at `moment(child)`,
    then the same command again until it ends with status 0 (not when the first run
    ended on its own before the moment came).

    Returns a dict: `killed` (False: it finished first), `progress` (the furthest
    step known reached: logged intervals, a checkpoint being written), `resumed_at`,
    `lost` (steps trained again), `unreadable` (complete checkpoints that cannot be
    read, after the kill and at the end), `partials` (half-written files the kill
    left), `runs`, `final_step` (newest checkpoint at the end) and `max_abs_diff`
    of the final weights against `reference` (a `read_weights` dict).
    """
    checkpoints = os.path.join(model_dir, "checkpoints")
    child = start()
    killed = child.kill_when(moment(child))
    partials = partial_checkpoints(checkpoints)
    steps = checkpoint_steps(checkpoints)
    resumed_at = steps[-1] if steps else 0
    progress = max([resumed_at, *logged_steps(model_dir),
                    *(int(PARTIAL_CHECKPOINT.match(p).group(1)) for p in partials)])
    unreadable = unreadable_checkpoints(checkpoints)
    runs = 1
    if not killed and child.process.returncode != 0:
        raise AssertionError(f"{child.command} failed before its kill moment:\n"
                             f"{child.output[-3000:]}")
    for runs in range(2, max_resumes + 2) if killed else ():
        child = start()
        if child.wait() == 0:
            break
        if runs == max_resumes + 1:
            raise AssertionError(f"{child.command} failed {max_resumes} times after the "
                                 f"kill:\n{child.output[-3000:]}")
    unreadable.update(unreadable_checkpoints(checkpoints))
    final = read_weights(os.path.join(model_dir, names.WEIGHTS_FILE))
    return dict(killed=killed, progress=progress, resumed_at=resumed_at,
                lost=max(0, min(progress, num_steps) - resumed_at), save_steps=save_steps,
                unreadable=unreadable, partials=partials, runs=runs,
                final_step=(checkpoint_steps(checkpoints) or [None])[-1],
                resume_output=child.output,
                max_abs_diff=None if reference is None else max_abs_diff(reference, final))


# Tiny workspaces: a 2-layer, 32-wide BERT over the Shakespeare vocabulary.
TINY_BERT = dict(vocab_size=927, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=32)
GOOD = ["the king is good", "a good lord", "good night sweet prince", "so good", "good"]
BAD = ["the king is dead", "a dead lord", "dead of night, dead prince", "so dead", "dead"]


def pretraining_workspace(directory, **bert):
    """Records (seq 32) from 600 lines of Shakespeare and a tiny config in
    `directory`; skips the test without ../shared/data."""
    import json

    from tests.training.worker_processes import write_records

    os.makedirs(directory, exist_ok=True)
    config = os.path.join(directory, "bert_config.json")
    with open(config, "w") as f:
        json.dump({**TINY_BERT, **bert}, f)
    return {"records": write_records(directory), "config": config}


def pretraining_flags(workspace, model_dir, steps=40, save=10, log=5, seed=7):
    from tests.helpers import SHAKESPEARE_VOCAB

    return [f"--input_file={workspace['records']}",
            f"--bert_config_file={workspace['config']}",
            f"--vocab_file={SHAKESPEARE_VOCAB}", "--do_lower_case=true",
            f"--model_dir={model_dir}", "--train_batch_size=8",
            f"--num_train_steps={steps}", "--num_warmup_steps=4", "--learning_rate=1e-3",
            f"--save_checkpoints_steps={save}", f"--log_steps={log}", f"--seed={seed}"]


def classifier_workspace(directory):
    """A tiny pre-trained model directory and sentiment TSVs (10 rows × 4 to train)."""
    import keras

    from keras_bert_app.config import BertConfig
    from keras_bert_app.model_dir import save_model_dir
    from keras_bert_app.models import BertEncoder, BertPretrainer
    from keras_bert_app.text.text_config import TextConfig
    from tests.helpers import SHAKESPEARE_VOCAB

    pretrained = os.path.join(directory, "pretrained")
    keras.utils.set_random_seed(0)
    save_model_dir(pretrained, BertPretrainer(BertEncoder(BertConfig(**TINY_BERT))),
                   SHAKESPEARE_VOCAB, TextConfig.for_vocab(SHAKESPEARE_VOCAB, True))
    rows = [(t, "pos") for t in GOOD] + [(t, "neg") for t in BAD]
    files = {}
    for name, data in (("train", rows * 4), ("dev", rows)):
        files[name] = os.path.join(directory, f"{name}.tsv")
        with open(files[name], "w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in data))
    return {"pretrained": pretrained, **files}


def classifier_flags(workspace, model_dir, steps=40, save=10, log=5, seed=7):
    return [f"--init_model_dir={workspace['pretrained']}", f"--model_dir={model_dir}",
            f"--train_file={workspace['train']}", f"--eval_file={workspace['dev']}",
            "--text_a_column=sentence", "--label_column=label", "--do_train",
            "--do_eval", "--max_seq_length=16", "--train_batch_size=4",
            "--learning_rate=5e-3", f"--num_train_steps={steps}",
            f"--save_checkpoints_steps={save}", f"--log_steps={log}", f"--seed={seed}",
            "--keep_checkpoint_max=2"]
