"""pipelines.run_multiple_choice: padded choices masked out of the softmax, the files a
run writes and its resume after a lost checkpoint (tiny model), one-line errors that
leave nothing behind; and end to end with the real MiniLM weights on multiple-choice
questions made from real SQuAD articles: accuracy on the questions it learnt above
chance by a margin luck cannot give (held-out accuracy: README.md's run), and the
text-in export answering held-out questions as predictions.tsv does.
"""

import json
import math
import os
import sys

import keras
import numpy as np
import pytest

from keras_bert_app import names
from keras_bert_app.data.multiple_choice_data import (MultipleChoiceExample,
                                                      read_multiple_choice,
                                                      split_by_title,
                                                      squad_to_multiple_choice,
                                                      write_jsonl)
from keras_bert_app.data.squad_data import read_squad
from keras_bert_app.models import BertEncoder, BertMultipleChoice
from keras_bert_app.text.text_config import TextConfig
from keras_bert_app.training.multiple_choice import (MultipleChoiceRunConfig,
                                                     run_multiple_choice)
from keras_bert_app.training.multiple_choice_inputs import (MultipleChoiceData,
                                                            training_model)
from tests.export.tf_only_check import run_check
from tests.helpers import (SHAKESPEARE_VOCAB, assert_start_up_logged, require_shared_data,
                           rerun_after_a_lost_checkpoint, run_pipeline, tiny_config)

WORDS = ("king queen lord lady night day sword crown heaven earth love death fair foul "
         "good ill sweet sour").split()


def tiny_questions(count, seed=0):
    """Questions of 2 to 5 one- or two-word choices over words of the vocabulary."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(count):
        choices = [" ".join(rng.choice(WORDS, 1 + j % 2)) for j in range(2 + i % 4)]
        records.append({"context": f"the {WORDS[i % len(WORDS)]} of the play",
                        "question": "which?" if i % 2 else "",
                        "choices": choices, "label": int(rng.integers(len(choices)))})
    return records


def tiny_data(examples, seq=16):
    data = MultipleChoiceData(MultipleChoiceRunConfig(model_dir="unused", do_predict=True,
                                                      predict_file="unused",
                                                      max_seq_length=seq),
                              examples, [], examples)
    data.set_text(SHAKESPEARE_VOCAB, TextConfig.for_vocab(SHAKESPEARE_VOCAB, True), seq)
    return data


def tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    # A large initializer scale: choices get clearly different logits.
    return BertMultipleChoice(BertEncoder(tiny_config(vocab_size=927,
                                                      initializer_range=1.0)))


def examples_of(records):
    return [MultipleChoiceExample(context=r["context"], question=r["question"],
                                  choices=tuple(r["choices"]), label=r["label"])
            for r in records]


def test_padded_choices_take_no_probability_and_leave_the_others_unchanged():
    examples = examples_of(tiny_questions(6))[:2]  # 2 and 3 choices
    model = tiny_model()
    x, y = next(iter(tiny_data(examples).train_dataset(batch_size=2, seed=1)))
    assert x[names.INPUT_WORD_IDS].shape[:2] == (2, 3)  # the 2-choice one padded
    logits = np.asarray(training_model(model)(x))  # [2, 3]
    counts = (np.asarray(x[names.INPUT_MASK])[:, :, 0] > 0).sum(axis=1).tolist()
    assert sorted(counts) == [2, 3]
    for row, count in enumerate(counts):
        example = examples[count - 2]
        (alone, _), = tiny_data([example]).train_dataset(batch_size=1, seed=1).take(1)
        np.testing.assert_allclose(logits[row, :count], np.asarray(model(alone))[0],
                                   rtol=0, atol=1e-5)
        assert (logits[row, count:] < -1e8).all()
    # So the batch's loss is the mean of each question's loss alone.
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(probabilities[np.arange(2), y.numpy()]))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
    assert float(loss) == pytest.approx(expected, abs=1e-5)
    assert probabilities[counts.index(2), 2] == 0.0


def test_predict_scores_each_pair_alone_as_the_model_scores_whole_questions():
    examples = examples_of([r for r in tiny_questions(12) if len(r["choices"]) == 4])
    data = tiny_data(examples, seq=24)
    model = tiny_model(1)
    probabilities, loss = data.predict(model, examples, batch_size=2)
    whole = {k: [] for k in names.ENCODER_INPUTS}
    for e in examples:  # each question [C, 24], all its choices together
        packed = data.preprocessor(([e.context] * 4, e.second_segments()))
        for k in whole:
            whole[k].append(np.asarray(packed[k]))
    logits = np.asarray(model({k: np.stack(v) for k, v in whole.items()}), np.float64)
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-5)
    assert len(set(expected.argmax(axis=1).tolist())) > 1
    labels = [e.label for e in examples]
    assert loss == pytest.approx(-np.mean(np.log(expected[np.arange(len(examples)),
                                                          labels])), rel=1e-4)


def test_a_best_weights_file_is_linked_only_into_the_plain_model_it_was_written_from(
        tmp_path):
    data = tiny_data(examples_of(tiny_questions(4)))
    model = tiny_model()
    weights = str(tmp_path / "best.weights.h5")
    model.save_weights(weights)
    with pytest.raises(ValueError, match="weights_file is for the plain "
                                         "BertMultipleChoice it was written from"):
        data.save_model_dir(str(tmp_path / "wrapped"), training_model(model),
                            weights_file=weights)
    assert not (tmp_path / "wrapped").exists()
    data.save_model_dir(str(tmp_path / "plain"), model, weights_file=weights)
    assert (tmp_path / "plain" / names.WEIGHTS_FILE).is_file()


def tiny_run(tmp_path, **overrides):
    train = str(tmp_path / "train.jsonl")
    write_jsonl(train, tiny_questions(24))
    fields = dict(model_dir=str(tmp_path / "run"), bert_config=tiny_config(vocab_size=927),
                  vocab_file=SHAKESPEARE_VOCAB, do_lower_case=True, do_train=True,
                  do_eval=True, do_predict=True, train_file=train, eval_file=train,
                  predict_file=train, max_seq_length=16, train_batch_size=4,
                  num_train_steps=4, save_checkpoints_steps=2, learning_rate=1e-3,
                  verbose=0)
    fields.update(overrides)
    return MultipleChoiceRunConfig(**fields)


def test_a_run_writes_accuracy_predictions_and_a_multiple_choice_directory(tmp_path):
    config = tiny_run(tmp_path)
    results = run_multiple_choice(config)
    run = tmp_path / "run"
    written = json.loads((run / names.EVAL_RESULTS_FILE).read_text())
    assert written == results
    assert set(results) == {"accuracy", "loss", "global_step", "best_step", "metric",
                            "eval_examples"}
    assert results["global_step"] == 4 and results["eval_examples"] == 24
    lines = (run / names.PREDICTIONS_FILE).read_text().splitlines()
    assert lines[0].split("\t") == ["index", "label", "prediction", "prob_0", "prob_1",
                                    "prob_2", "prob_3", "prob_4"]
    examples = read_multiple_choice(config.predict_file)
    assert len(lines) == 1 + len(examples)
    correct = 0
    for line, example in zip(lines[1:], examples):
        cells = line.split("\t")
        probabilities = [float(c) for c in cells[3:3 + len(example.choices)]]
        assert cells[3 + len(example.choices):] == [""] * (5 - len(example.choices))
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
        assert int(cells[2]) == int(np.argmax(probabilities))
        correct += int(cells[2]) == example.label
    assert results["accuracy"] == pytest.approx(correct / len(examples))
    task = json.loads((run / names.TASK_CONFIG_FILE).read_text())
    assert task["task"] == names.MULTIPLE_CHOICE_TASK and task["max_seq_length"] == 16
    assert (run / "multiple_choice_run.json").is_file()
    assert (run / "checkpoints" / "best" / "best.json").is_file()
    # Evaluation alone, from the directory: the best checkpoint's accuracy again.
    again = run_multiple_choice(tiny_run(tmp_path, do_train=False, do_predict=False,
                                         bert_config=None, vocab_file=None,
                                         do_lower_case=None))
    assert again["accuracy"] == pytest.approx(results["accuracy"])


def test_a_run_that_lost_its_last_checkpoint_resumes_to_the_same_weights(tmp_path,
                                                                           capsys):
    """The same run again after a kill between its checkpoints at steps 2 and 4:
    it continues from step 2 on the same stream of questions to the same weights."""
    checkpoint = tmp_path / "run" / "checkpoints" / "ckpt-4.weights.h5"
    rerun_after_a_lost_checkpoint(run_multiple_choice,
                                  tiny_run(tmp_path, do_eval=False, do_predict=False),
                                  capsys, compared=checkpoint, lost=[checkpoint])


def test_configs_that_cannot_run_are_refused(tmp_path):
    with pytest.raises(ValueError, match="do_eval needs eval_file"):
        tiny_run(tmp_path, eval_file=None)
    with pytest.raises(ValueError, match="Nothing to do"):
        tiny_run(tmp_path, do_train=False, do_eval=False, do_predict=False)
    with pytest.raises(ValueError, match="is a fine-tuned multiple-choice directory"):
        run_multiple_choice(tiny_run(tmp_path, do_train=False))


@pytest.mark.parametrize("bad, message", [
    ({"label": 5}, "label 5 is out of range for 3 choices"),
    ({"choices": ["one"]}, "1 choice(s); a question needs at least 2"),
])
def test_bad_input_is_one_line_naming_file_and_line_and_nothing_is_written(tmp_path, bad,
                                                                          message):
    records = tiny_questions(6)
    records[2] = dict(records[2], **dict({"choices": ["a", "b", "c"], "label": 0}, **bad))
    train, dev = str(tmp_path / "train.jsonl"), str(tmp_path / "dev.jsonl")
    write_jsonl(train, tiny_questions(6))
    write_jsonl(dev, records)
    bert_config = tmp_path / "bert_config.json"
    bert_config.write_text(tiny_config(vocab_size=927).to_json_string())
    result = run_pipeline("run_multiple_choice", f"--train_file={train}",
                          f"--eval_file={dev}", f"--bert_config_file={bert_config}",
                          f"--vocab_file={SHAKESPEARE_VOCAB}", "--do_lower_case",
                          f"--model_dir={tmp_path / 'run'}", "--do_train", "--do_eval",
                          check=False)
    errors = [l for l in result.stderr.splitlines()
              if l.startswith("pipelines.run_multiple_choice")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-2000:]
    assert f"{dev}:3: {message}" in errors[0]
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------- real weights, real data


def binomial_tail(n, k, p):
    """P(X >= k) for X ~ Binomial(n, p)."""
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))


def test_minilm_learns_squad_multiple_choice_and_serves(minilm_dir, tmp_path):
    from keras_bert_app.export.multiple_choice import CHOICES, export_multiple_choice

    squad = os.path.join(require_shared_data(), "squad", "train-v1.1-subset.json")
    # 24 questions of the first article to learn; questions of held-out articles to
    # predict and serve. 48 positions hold each question and choice with the start
    # of the context.
    kept, held_out = split_by_title(read_squad(squad), 2)
    train, predict = tmp_path / "train.jsonl", tmp_path / "predict.jsonl"
    write_jsonl(train, squad_to_multiple_choice(kept, seed=0)[:24])
    write_jsonl(predict, squad_to_multiple_choice(held_out, seed=1)[:16])
    run = tmp_path / "run"
    flags = [f"--train_file={train}", f"--eval_file={train}",
             f"--init_model_dir={minilm_dir}", f"--model_dir={run}", "--do_train",
             "--max_seq_length=48", "--train_batch_size=8", "--learning_rate=3e-4",
             "--warmup_proportion=0", "--num_train_steps=36",
             "--save_checkpoints_steps=18", "--eval_batch_size=16"]
    result = run_pipeline("run_multiple_choice", *flags, "--do_eval", "--do_predict",
                          f"--predict_file={predict}")
    results = json.loads((run / names.EVAL_RESULTS_FILE).read_text())
    assert f"eval_results: accuracy={results['accuracy']:.4f}" in result.stdout
    assert_start_up_logged(result.stdout)
    # It has learnt the questions it was trained on: chance is 1/4, and this many
    # right of 24 (18 or more) has a probability below 1e-6 by luck (labels, pairs
    # and choices agree; a model scoring the wrong pairs stays at chance). Held-out
    # accuracy on all of SQuAD's articles: README.md, "Multiple choice".
    correct = round(results["accuracy"] * 24)
    assert results["eval_examples"] == 24
    assert binomial_tail(24, correct, 0.25) < 1e-6, results
    # The text-in export answers as predictions.tsv does.
    version = export_multiple_choice(str(tmp_path / "export"), str(run))
    lines = (run / names.PREDICTIONS_FILE).read_text().splitlines()[1:]
    written = np.array([[float(c) for c in line.split("\t")[3:]] for line in lines])
    examples = read_multiple_choice(predict)
    check = run_check({"models": {"mc": version}, "cases": [{
        "id": "dev", "model": "mc", "call": "serving_default", "inputs": {
            names.CONTEXT: [e.context for e in examples],
            names.QUESTION: [e.question for e in examples],
            CHOICES: np.array([list(e.choices) for e in examples], object)}}]},
        str(tmp_path))
    for way in ("eager", "session"):
        served = check["cases"]["dev"][way]["outputs"]
        np.testing.assert_allclose(served[names.PROBABILITIES], written, atol=1e-5)
        assert served[names.LABEL_ID].tolist() == written.argmax(axis=1).tolist()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
