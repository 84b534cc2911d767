"""Classifies sentences with an exported text-in SavedModel, as a user's serving
process would: it imports only `tensorflow` and `tensorflow_text`.

    python keras_bert_app/demo/serving_client.py SAVED_MODEL_DIR "a sentence" ...

Run by path (not `-m`), so that nothing of keras_bert_app is imported; our package
and keras-hub are made unimportable first, so a SavedModel that needed them fails to
load here as it would in TF Serving. (Keras itself cannot be blocked: the
`tensorflow_text` package imports it for its layers; the SavedModel does not use
it.) Prints one JSON object on its last line: `{"label": [...], "probabilities":
[[...]]}`.
"""

import json
import sys

# A SavedModel that needed our code or keras-hub to load would fail here.
for _blocked in ("keras_bert_app", "keras_hub", "keras_nlp"):
    sys.modules[_blocked] = None

import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401  (registers the tokenizer's ops)


def classify(saved_model_dir, sentences):
    model = tf.saved_model.load(saved_model_dir)
    serve = model.signatures["serving_default"]
    outputs = serve(text_a=tf.constant(sentences, tf.string))
    return {
        "label": [v.decode("utf-8") for v in outputs["label"].numpy().tolist()],
        "probabilities": outputs["probabilities"].numpy().round(4).tolist(),
    }


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    result = classify(argv[1], argv[2:])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
