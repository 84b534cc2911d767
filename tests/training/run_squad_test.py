"""`pipelines.run_squad` on real SQuAD articles with the real MiniLM weights (tiny
windows and few steps): Google's output files, answers that are exact substrings of
the contexts, official scores that agree with the written predictions, v2.0's null
odds, settings a prediction must share, one-line input errors; the text-in export of
each trained directory answers as predictions.json does; resume after a kill (tiny
model)."""

import json
import os
import sys

import numpy as np
import pytest

from keras_bert_app import names
from keras_bert_app.data.squad_data import read_squad
from keras_bert_app.training.squad import SquadRunConfig, run_squad
from keras_bert_app.training.squad_metrics import squad_v1_scores, squad_v2_scores
from tests.export.tf_only_check import run_check
from tests.helpers import (SHAKESPEARE_VOCAB, assert_start_up_logged, require_shared_data,
                           rerun_after_a_lost_checkpoint, run_pipeline, tiny_config)

SMALL = ["--max_seq_length=128", "--doc_stride=64", "--max_query_length=32",
         "--train_batch_size=8", "--predict_batch_size=16"]


@pytest.fixture(scope="module")
def pretrained(minilm_dir):
    return minilm_dir  # tests/conftest.py: MiniLM converted once per session


def subset(tmp_path, source, paragraphs, name="squad.json"):
    with open(source, encoding="utf-8") as f:
        data = json.load(f)
    article = data["data"][0]
    small = {"version": data["version"],
             "data": [dict(article, paragraphs=article["paragraphs"][:paragraphs])]}
    path = tmp_path / name
    path.write_text(json.dumps(small), encoding="utf-8")
    return path


def read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_trains_predicts_scores_and_serves_squad_v1_1(pretrained, tmp_path):
    data = subset(tmp_path, os.path.join(require_shared_data(), "squad",
                                         "train-v1.1-subset.json"), paragraphs=1)
    run = tmp_path / "run"
    flags = [f"--train_file={data}", f"--predict_file={data}",
             f"--init_model_dir={pretrained}", f"--model_dir={run}", "--do_train",
             "--do_predict", *SMALL, "--learning_rate=3e-4", "--num_train_steps=30"]
    result = run_pipeline("run_squad", *flags)
    assert "gradients do not exist" not in result.stdout + result.stderr.lower()
    assert_start_up_logged(result.stdout)
    examples = {e.qid: e for e in read_squad(data)}
    predictions = read(run / names.SQUAD_PREDICTIONS_FILE)
    nbest = read(run / names.SQUAD_NBEST_FILE)
    assert sorted(predictions) == sorted(examples) and len(examples) == 5
    assert not (run / names.SQUAD_NULL_ODDS_FILE).exists()  # v1.1
    for qid, answer in predictions.items():
        context = examples[qid].context
        assert answer in context  # an exact substring, original casing
        best = nbest[qid][0]
        assert best["text"] == answer == context[best["start_char"]:best["end_char"]]
        assert sum(e["probability"] for e in nbest[qid]) == pytest.approx(1.0)
        assert len({e["text"] for e in nbest[qid]}) == len(nbest[qid]) <= 20
    results = read(run / names.EVAL_RESULTS_FILE)
    expected = squad_v1_scores(list(examples.values()), predictions)
    assert results["exact_match"] == pytest.approx(expected["exact_match"])
    assert results["f1"] == pytest.approx(expected["f1"])
    # 30 steps on these 5 questions (10 windows): it has learnt where their answers
    # are (labels, windows and offsets agree; a model that points elsewhere scores
    # near 0).
    assert results["f1"] > 90, results
    task = read(run / names.TASK_CONFIG_FILE)
    assert task["task"] == "squad" and task["max_seq_length"] == 128
    assert task["settings"] == {"version_2_with_negative": False, "doc_stride": 64,
                                "max_query_length": 32, "max_answer_length": 30,
                                "n_best_size": 20, "null_score_diff_threshold": 0.0}
    # Prediction alone uses the directory, and refuses other window settings.
    again = run_pipeline("run_squad", f"--predict_file={data}", f"--model_dir={run}",
                         "--do_predict", *SMALL)
    assert read(run / names.SQUAD_PREDICTIONS_FILE) == predictions, again.stdout
    # Refused here, in this process (the pipeline's exit status and one-line message
    # for a refused run: test_bad_input_is_one_line_naming_the_question_and_...).
    with pytest.raises(ValueError, match=r"max_seq_length=384 \(the model: 128\)"):
        run_squad(SquadRunConfig(predict_file=data, model_dir=str(run), do_predict=True,
                                 max_seq_length=384, doc_stride=64, max_query_length=32))
    # The text-in export answers as predictions.json does, offsets included.
    outputs, stdout = served(run, list(examples.values()), tmp_path)
    assert "Wrote the squad SavedModel, version 1" in stdout
    for out in outputs:
        assert [a.decode() for a in out[names.ANSWER]] == [
            predictions[qid] for qid in examples]
        assert [(s, e) for s, e in zip(out[names.START_CHAR], out[names.END_CHAR])] == [
            (nbest[qid][0]["start_char"], nbest[qid][0]["end_char"]) if predictions[qid]
            else (-1, -1) for qid in examples]


def tiny_squad(path):
    """SQuAD v1.1 questions over contexts of the tiny vocabulary's words, each context
    longer than one 24-position window."""
    contexts = ["the king of the play is dead and romeo is in mantua tonight with "
                "his sword while juliet waits in verona for the night to end",
                "good night sweet prince said the lady and the lord of the crown "
                "went to heaven leaving the earth to the fair and the foul"]
    paragraphs = []
    for i, context in enumerate(contexts * 2):
        qas = []
        for j, answer in enumerate(("romeo", "juliet") if i % 2 == 0 else
                                   ("the lady", "the crown")):
            question = "who is in mantua?" if j == 0 else "who waits?"
            qas.append({"id": f"q{i}-{j}", "question": question, "answers": [
                {"text": answer, "answer_start": context.index(answer)}]})
        paragraphs.append({"context": context, "qas": qas})
    path.write_text(json.dumps({"version": "1.1", "data": [
        {"title": "tiny", "paragraphs": paragraphs}]}), encoding="utf-8")
    return str(path)


def test_a_run_that_lost_its_last_checkpoint_resumes_to_the_same_weights(tmp_path,
                                                                           capsys):
    """The same run again after a kill between its checkpoints at steps 2 and 4 (the
    last checkpoint and the final weights lost): it continues from step 2 on the same
    stream of windows to the same weights."""
    config = SquadRunConfig(
        train_file=tiny_squad(tmp_path / "squad.json"), model_dir=str(tmp_path / "run"),
        do_train=True, bert_config=tiny_config(vocab_size=927),
        vocab_file=SHAKESPEARE_VOCAB, do_lower_case=True, max_seq_length=24,
        doc_stride=8, max_query_length=8, train_batch_size=2, num_train_steps=4,
        save_checkpoints_steps=2, learning_rate=1e-3, verbose=0)
    run = tmp_path / "run"
    rerun_after_a_lost_checkpoint(
        run_squad, config, capsys, compared=run / names.WEIGHTS_FILE,
        lost=[run / "checkpoints" / "ckpt-4.weights.h5", run / names.WEIGHTS_FILE])


def served(run, examples, tmp_path):
    """Exports the run's directory with the pipeline and answers `examples` with it in
    a process that has only TensorFlow and TF Text (eagerly and as TF Serving runs
    it); returns both outputs and the pipeline's stdout."""
    base = tmp_path / "export"
    export = run_pipeline("export_savedmodel", "--export_type=squad",
                          f"--init_model_dir={run}", f"--export_path={base}")
    check = run_check({"models": {"squad": str(base / "1")}, "cases": [{
        "id": "dev", "model": "squad", "call": "serving_default",
        "inputs": {names.QUESTION: [e.question for e in examples],
                   names.CONTEXT: [e.context for e in examples]}}]}, str(tmp_path))
    case = check["cases"]["dev"]
    return [case["eager"]["outputs"], case["session"]["outputs"]], export.stdout


def test_squad_v2_writes_null_odds_and_the_v2_breakdown(pretrained, tmp_path):
    data = os.path.join(require_shared_data(), "squad", "dev-v2.0.json")  # 14, 6 without
    run = tmp_path / "run"
    run_pipeline("run_squad", "--version_2_with_negative", f"--train_file={data}",
                 f"--predict_file={data}", f"--init_model_dir={pretrained}",
                 f"--model_dir={run}", "--do_train", "--do_predict", *SMALL,
                 "--num_train_steps=4", "--save_checkpoints_steps=4")
    null_odds = read(run / names.SQUAD_NULL_ODDS_FILE)
    predictions = read(run / names.SQUAD_PREDICTIONS_FILE)
    assert sorted(null_odds) == sorted(predictions) and len(predictions) == 14
    for qid, answer in predictions.items():
        assert (answer == "") == (null_odds[qid] > 0.0)  # the default threshold 0
    results = read(run / names.EVAL_RESULTS_FILE)
    assert results["HasAns_total"] == 8 and results["NoAns_total"] == 6
    expected = squad_v2_scores(read_squad(data, True), predictions, na_probs=null_odds,
                               na_prob_thresh=0.0)
    for key in ("exact", "f1", "best_f1", "best_f1_thresh", "best_exact"):
        assert results[key] == pytest.approx(expected[key]), key
    # A tuned threshold: predicted again with it, and recorded for the export. Halfway
    # to the next question's odds: one exactly on a question's odds would turn on the
    # last bit of logits computed in another batch.
    above = [v for v in null_odds.values() if v > results["best_f1_thresh"]]
    tuned = (results["best_f1_thresh"] + min(above)) / 2 if above else \
        results["best_f1_thresh"] + 1.0
    run_pipeline("run_squad", "--version_2_with_negative", f"--predict_file={data}",
                 f"--model_dir={run}", "--do_predict", *SMALL,
                 f"--null_score_diff_threshold={tuned}")
    assert read(run / names.TASK_CONFIG_FILE)["settings"][
        "null_score_diff_threshold"] == pytest.approx(tuned)
    predictions = read(run / names.SQUAD_PREDICTIONS_FILE)
    for qid, answer in predictions.items():
        assert (answer == "") == (null_odds[qid] > tuned)
    # The export takes the tuned threshold: it answers as predictions.json does.
    examples = read_squad(data, True)
    outputs, _ = served(run, examples, tmp_path)
    for out in outputs:
        assert [a.decode() for a in out[names.ANSWER]] == [predictions[e.qid]
                                                           for e in examples]
        assert out[names.HAS_ANSWER].tolist() == [bool(predictions[e.qid])
                                                  for e in examples]
        np.testing.assert_allclose(out[names.NULL_ODDS],
                                   [null_odds[e.qid] for e in examples], atol=1e-4)


def test_bad_input_is_one_line_naming_the_question_and_nothing_is_written(pretrained,
                                                                         tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": "Normandy is in France.", "qas": [
            {"id": "q7", "question": "Where?",
             "answers": [{"text": "France", "answer_start": 3}]}]}]}]}))
    result = run_pipeline("run_squad", f"--train_file={bad}", f"--init_model_dir={pretrained}",
                          f"--model_dir={tmp_path / 'run'}", "--do_train", *SMALL,
                          check=False)
    errors = [l for l in result.stderr.splitlines() if l.startswith("pipelines.run_squad")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-2000:]
    assert "question 'q7': answer 'France' is not at answer_start=3" in errors[0]
    assert not (tmp_path / "run").exists()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
