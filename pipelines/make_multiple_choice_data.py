"""Makes multiple-choice data (JSON lines) from SQuAD questions.

    python -m pipelines.make_multiple_choice_data \
        --squad_file=../shared/data/squad/train-v1.1-subset.json \
        --output_dir=data/squad_mc --held_out_articles=2

Each question becomes `{"id", "context", "question", "choices", "label"}`: the
paragraph, SQuAD's question, and four choices: its answer and three answers of other
questions (about the same paragraph first, then the same article; or
--distractors=article: any of the article's), in a random position (fixed by --seed). The last
--held_out_articles articles go to dev.jsonl, the others to train.jsonl, so no
paragraph is in both. `run_multiple_choice` reads both files as they are.
"""

import os

from absl import flags

from pipelines.errors import run

FLAGS = flags.FLAGS
flags.DEFINE_string("squad_file", None, "SQuAD JSON (v1.1 or v2.0 layout; unanswerable "
                    "questions are left out).")
flags.DEFINE_string("output_dir", None, "Where train.jsonl and dev.jsonl are written.")
flags.DEFINE_integer("held_out_articles", 2, "Articles (the last ones) written to "
                     "dev.jsonl.")
flags.DEFINE_integer("num_choices", 4, "Choices per question.")
flags.DEFINE_enum("distractors", "paragraph", ["paragraph", "article"],
                  "Where the wrong choices come from: other answers about the same "
                  "paragraph first (every choice is a span of the context), or any other "
                  "answers of the same article (mostly not in the paragraph: easier).")
flags.DEFINE_integer("seed", 0, "Seed of the distractors and the answer positions.")
flags.mark_flags_as_required(["squad_file", "output_dir"])

TRAIN_FILE, DEV_FILE = "train.jsonl", "dev.jsonl"


def main(argv):
    del argv
    from keras_bert_app.data.multiple_choice_data import (split_by_title,
                                                          squad_to_multiple_choice,
                                                          write_jsonl)
    from keras_bert_app.data.squad_data import read_squad

    questions = read_squad(FLAGS.squad_file, version_2_with_negative=True)
    train, dev = split_by_title(questions, FLAGS.held_out_articles)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    for name, part, seed in ((TRAIN_FILE, train, FLAGS.seed), (DEV_FILE, dev,
                                                               FLAGS.seed + 1)):
        records = squad_to_multiple_choice(part, FLAGS.num_choices, seed=seed,
                                           distractors=FLAGS.distractors)
        path = os.path.join(FLAGS.output_dir, name)
        write_jsonl(path, records)
        titles = len({e.title for e in part})
        print(f"Wrote {len(records)} questions of {titles} articles to {path} "
              f"({len(part) - len(records)} left out: unanswerable or too few "
              "other answers).")


if __name__ == "__main__":
    run(main)
