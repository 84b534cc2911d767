"""Counts the questions whose served answer equals `run_squad`'s predictions.json.

    python benchmarks/squad_served_check.py EXPORT_VERSION_DIR DEV_JSON PREDICTIONS_JSON

Runs in a process that imports only tensorflow and tensorflow_text (as a server
would), sends every question with its own paragraph, 32 per request, and prints the
count and the first differences.
"""

import json
import sys

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer op)


def main(export_dir, dev_file, predictions_file):
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    with open(dev_file, encoding="utf-8") as f:
        data = json.load(f)
    with open(predictions_file, encoding="utf-8") as f:
        predictions = json.load(f)
    questions = [(q["id"], q["question"], p["context"]) for article in data["data"]
                 for p in article["paragraphs"] for q in p["qas"]]
    differ = []
    for first in range(0, len(questions), 32):
        part = questions[first:first + 32]
        answers = serve(question=tf.constant([q for _, q, _ in part]),
                        context=tf.constant([c for _, _, c in part]))["answer"]
        differ += [(qid, a.decode(), predictions[qid])
                   for (qid, _, _), a in zip(part, answers.numpy())
                   if a.decode() != predictions[qid]]
    print(f"served == predictions.json: {len(questions) - len(differ)}/{len(questions)}")
    for qid, served, written in differ[:20]:
        print(f"  {qid}: served {served!r}, predictions.json {written!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
