"""Good input files, line by line, that the bad-data tests spoil one known line of."""

import json

TSV = ["sentence\tlabel", "the king is good\tpos", "the king is dead\tneg", "a good lord\tpos"]
CSV = ["sentence,label", '"the king, good",pos', '"the king, dead",neg', '"a lord",pos']
CLS_JSONL = [json.dumps({"sentence": s, "label": l}) for s, l in
             [("the king is good", "pos"), ("the king is dead", "neg"), ("a lord", "pos")]]
CONLL = ["Romeo B-PER", "speaks O", "", "Juliet B-PER", "sleeps O", "in O", "Verona B-LOC"]
NER_JSONL = [json.dumps({"words": w, "tags": t}) for w, t in
             [(["Romeo", "speaks"], ["B-PER", "O"]), (["in", "Verona"], ["O", "B-LOC"])]]
SQUAD = json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [
    {"context": "Normandy is in France.", "qas": [
        {"id": "q1", "question": "Where is Normandy?",
         "answers": [{"text": "France", "answer_start": 15}]},
        {"id": "q2", "question": "What is in France?",
         "answers": [{"text": "Normandy", "answer_start": 0}]}]}]}]}, indent=1).split("\n")
SQUAD_JSONL = [json.dumps({"id": f"q{i}", "question": "Where?", "context": "Normandy is "
                           "in France.", "answers": {"text": ["France"],
                                                     "answer_start": [15]}})
               for i in range(3)]
MC_JSONL = [json.dumps({"context": "The king is dead.", "question": "Who?",
                        "choices": ["the king", "a lord", "Romeo"], "label": i})
            for i in range(3)]
SWAG = ["sent1,sent2,ending0,ending1,label", "The king,is,dead,alive,0",
        "The lord,is,good,bad,1", "Romeo,speaks,softly,loudly,0"]
CORPUS = ["The king is dead.", "Long live the king.", "", "Romeo speaks softly.",
          "Juliet sleeps in Verona."]
NER_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
