"""The main job: from raw text to a served text-in classifier, on shipped data.

`run_demo(DemoConfig(output_dir))` learns a vocabulary, creates pre-training data,
pre-trains a tiny BERT, imports the real MiniLM BERT, fine-tunes it on SST-2, exports
the text-in SavedModel and classifies sentences with it in a separate process;
`pipelines.demo` is its command line.
"""

from keras_bert_app.demo.runner import run_demo
from keras_bert_app.demo.settings import FULL, QUICK, DemoConfig, DemoSizes
