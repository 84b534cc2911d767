"""`pipelines.run_ner` on real WNUT-17 tweets with the real MiniLM weights (small
windows, few steps): eval_results.json by seqeval's rules, agreeing with the
predictions.txt it writes, the text-in export tagging as predictions.txt does; a
resume after a lost checkpoint (tiny model); bad input as one line naming file:line,
nothing written."""

import json
import os
import sys

import pytest

from keras_bert_app import names
from keras_bert_app.export import ner as ner_export
from keras_bert_app.training.ner import NerRunConfig, run_ner
from keras_bert_app.training.ner_metrics import entity_scores
from tests.export.tf_only_check import run_check
from tests.helpers import (SHAKESPEARE_VOCAB, assert_start_up_logged, require_shared_data,
                           rerun_after_a_lost_checkpoint, run_pipeline, tiny_config)

# 32 positions and stride 8: the longer tweets span several windows (300 sentences
# make 591 windows).
SMALL = ["--max_seq_length=32", "--doc_stride=8", "--train_batch_size=8",
         "--eval_batch_size=64", "--predict_batch_size=64"]


@pytest.fixture(scope="module")
def pretrained(minilm_dir):
    return minilm_dir  # tests/conftest.py: MiniLM converted once per session


def wnut_part(tmp_path, name, sentences):
    """The first `sentences` sentences with an entity of a WNUT-17 file (its own
    lines; some of its sentence breaks are lines of a lone tab)."""
    source = os.path.join(require_shared_data(), "wnut17", name)
    blocks, current = [], []
    with open(source, encoding="utf-8") as f:
        for line in list(f) + [""]:
            if line.strip():
                current.append(line.rstrip("\n"))
            elif current:
                if any(not l.endswith("\tO") for l in current):
                    blocks.append("\n".join(current))
                current = []
    path = tmp_path / name
    path.write_text("\n\n".join(blocks[:sentences]) + "\n", encoding="utf-8")
    return path


def read_predictions(path):
    """`(words, gold tags, predicted tags)` per sentence of predictions.txt."""
    sentences = []
    with open(path, encoding="utf-8") as f:
        for block in f.read().split("\n\n"):
            rows = [line.split("\t") for line in block.split("\n") if line]
            if rows:
                assert {len(r) for r in rows} == {3}  # token, gold, predicted
                sentences.append(tuple(list(c) for c in zip(*rows)))
    return sentences


def test_trains_evaluates_predicts_and_exports(pretrained, tmp_path):
    train = wnut_part(tmp_path, "train.conll", 300)
    dev = wnut_part(tmp_path, "dev.conll", 100)
    run = tmp_path / "run"
    flags = [f"--train_file={train}", f"--eval_file={dev}", f"--predict_file={dev}",
             f"--init_model_dir={pretrained}", f"--model_dir={run}", "--do_train",
             "--do_eval", "--do_predict", *SMALL, "--learning_rate=1e-4",
             "--num_train_steps=80", "--save_checkpoints_steps=40"]
    result = run_pipeline("run_ner", *flags)
    assert_start_up_logged(result.stdout)
    assert "Evaluation at step 40" in result.stdout and "Evaluation at step 80" in \
        result.stdout
    results = json.loads((run / names.EVAL_RESULTS_FILE).read_text())
    printed = [l for l in result.stdout.splitlines() if l.startswith("eval_results: ")]
    assert printed and printed[0].startswith(
        f"eval_results: f1={results['f1']:.4f}, precision={results['precision']:.4f}, "
        f"recall={results['recall']:.4f}")
    # predictions.txt: the dev file's lines plus the predicted tag, and scoring it
    # gives eval_results.json (the best checkpoint's weights are the final model's).
    predicted = read_predictions(run / "predictions.txt")
    assert len(predicted) == 100
    scores = entity_scores([g for _, g, _ in predicted], [p for _, _, p in predicted])
    assert scores["f1"] == pytest.approx(results["f1"])
    assert {k: v["support"] for k, v in results["per_type"].items()} == {
        k: v["support"] for k, v in scores["per_type"].items()}
    assert results["mode"] == "conlleval" and results["best_step"] in (40, 80)
    # Few steps, but the tagger has learnt that most words are O and tags some
    # entities: the labels reach the right pieces.
    assert sum(p != "O" for _, _, tags in predicted for p in tags) > 0
    assert results["f1"] > 0.1, results
    task = json.loads((run / names.TASK_CONFIG_FILE).read_text())
    assert task["task"] == "ner" and task["settings"] == {"doc_stride": 8,
                                                                "strict_iob2": False}
    assert task["label_names"][0] == "O" and len(task["label_names"]) == 13

    # The export tags the words of each tweet (joined by spaces) as predictions.txt.
    base = tmp_path / "export"
    run_pipeline("export_savedmodel", "--export_type=ner", f"--init_model_dir={run}",
                 f"--export_path={base}")
    version = str(base / "1")
    texts = [" ".join(words) for words, _, _ in predicted]
    check = run_check({"models": {"ner": version}, "cases": [{
        "id": "dev", "model": "ner", "call": "serving_default",
        "inputs": {names.SERVING_TEXT_INPUT: texts}}]}, str(tmp_path))
    for way in ("eager", "session"):
        out = check["cases"]["dev"][way]["outputs"]
        same = compared = 0
        for row, (words, _, tags) in enumerate(predicted):
            count = int(out[ner_export.NUM_WORDS][row])
            served = dict(zip(out[ner_export.WORD_START_CHAR][row][:count].tolist(),
                              out[ner_export.TAGS][row][:count]))
            start = 0
            for word, tag in zip(words, tags):
                if start in served:
                    compared += 1
                    same += served[start].decode() == tag
                start += len(word) + 1
        assert compared >= 0.99 * sum(len(w) for w, _, _ in predicted)
        assert same / compared >= 0.999, (same, compared)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def tiny_run(tmp_path, **fields):
    config = tiny_config(vocab_size=927)
    return NerRunConfig(model_dir=str(tmp_path / "run"), bert_config=config,
                        vocab_file=SHAKESPEARE_VOCAB, do_lower_case=True, **fields)


# Sentences of the tiny vocabulary's words, tagged: lengths in both buckets of a
# 32-position window (16 and 32), and a long one that spans several windows.
TINY_NER = "\n\n".join(
    "\n".join(f"{word} {tag}" for word, tag in sentence) for sentence in [
        [("romeo", "B-PER"), ("speaks", "O")],
        [("juliet", "B-PER"), ("is", "O"), ("in", "O"), ("verona", "B-LOC")],
        [("the", "O"), ("king", "O"), ("of", "O"), ("the", "O"), ("play", "O"),
         ("is", "O"), ("dead", "O"), ("and", "O"), ("romeo", "B-PER"), ("is", "O"),
         ("in", "O"), ("mantua", "B-LOC"), ("tonight", "O")] * 3,
    ] * 4) + "\n"


def evaluation_at(step, output):
    """The run's printed evaluation of `step`'s weights."""
    lines = [l[l.index(f"Evaluation at step {step}:"):] for l in output.splitlines()
             if f"Evaluation at step {step}:" in l]
    assert len(lines) == 1, output[-2000:]
    return lines[0]


def test_a_run_that_lost_its_last_checkpoint_resumes_to_the_same_weights(tmp_path,
                                                                           capsys):
    """The same run again after a kill between its checkpoints at steps 2 and 4 (the
    last checkpoint and the final weights lost): it continues from step 2 on the same
    stream of windows to the same weights, evaluated the same."""
    train = write(tmp_path, "train.txt", TINY_NER)
    config = tiny_run(tmp_path, train_file=train, eval_file=train, do_train=True,
                      do_eval=True, max_seq_length=32, doc_stride=8, train_batch_size=4,
                      num_train_steps=4, save_checkpoints_steps=2, learning_rate=1e-3,
                      verbose=0)
    checkpoint = tmp_path / "run" / "checkpoints" / "ckpt-4.weights.h5"
    first, second = rerun_after_a_lost_checkpoint(
        run_ner, config, capsys, compared=checkpoint,
        lost=[checkpoint, tmp_path / "run" / names.WEIGHTS_FILE])
    assert evaluation_at(4, second) == evaluation_at(4, first)


def test_an_eval_tag_outside_the_training_tags_is_refused_before_anything_is_written(
        tmp_path):
    train = write(tmp_path, "train.txt", "Romeo B-PER\nspeaks O\n")
    dev = write(tmp_path, "dev.txt", "Juliet B-PER\n\nVerona B-LOC\n")
    with pytest.raises(ValueError, match=r"dev.txt:3: tag 'B-LOC' is not in the label "
                                         r"set of .*train.txt: \['O', 'B-PER', 'I-PER'\]"):
        run_ner(tiny_run(tmp_path, train_file=train, eval_file=dev, do_train=True,
                         do_eval=True))
    assert not (tmp_path / "run").exists()


def test_prediction_without_training_needs_a_ner_model(tmp_path):
    data = write(tmp_path, "x.txt", "a\n")
    with pytest.raises(ValueError, match="is a fine-tuned NER directory"):
        run_ner(tiny_run(tmp_path, predict_file=data, do_predict=True))
    assert not (tmp_path / "run").exists()


def test_bad_input_is_one_line_naming_file_and_line_and_nothing_is_written(tmp_path):
    train = write(tmp_path, "train.txt", "Romeo B-PER\nspeaks\tO\tx\n")
    result = run_pipeline("run_ner", f"--train_file={train}", "--do_train",
                          f"--model_dir={tmp_path / 'run'}", "--preset=bert_tiny",
                          f"--vocab_file={SHAKESPEARE_VOCAB}", "--do_lower_case",
                          check=False)
    errors = [l for l in result.stderr.splitlines() if l.startswith("pipelines.run_ner")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-2000:]
    assert f"{train}:2: 3 columns where the file's first word line has 2" in errors[0]
    assert not (tmp_path / "run").exists()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
