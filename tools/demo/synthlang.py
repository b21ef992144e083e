#!/usr/bin/env python3
"""synthlang.py — a small synthetic language with real structure, for lop's demo.

Every document (one per line) is a few sentences about a tiny world. What a model can learn:
  * grammar: subject-verb agreement across a prepositional phrase
      "the big cats near the old dog chase the bird ."   (cats ... chase, not chases)
  * world knowledge: each animal has one colour, food and home, stated in many forms
      "the fox eats eggs ."  "foxes live in the den ."  "the fox is red ."
  * counting by ones or twos: "sam counts four five six seven ."  "ann counts two four six ."
  * in-context recall (needs attention): "tom has a red hat . ann has a blue hat .
      the hat of tom is red ."  (two owners: chance is one half)
Tasks probe each skill as multiple choice ({"query","choices","gold"}, lm-eval --task-file): the
query is the context, each choice is a continuation (joined with one space, the harness's target
delimiter).

usage: synthlang.py OUTDIR [--seed N] [--train N] [--test N] [--items N]
writes OUTDIR/{train,valid,test}.txt and OUTDIR/tasks/synth_{agree,facts,count,recall}.jsonl
(python3 standard library only; deterministic for a given seed)
"""
import argparse
import json
import os
import random

ANIMALS = {  # singular: (plural, colour, food, home)
    "cat": ("cats", "black", "fish", "house"),
    "dog": ("dogs", "brown", "meat", "yard"),
    "bird": ("birds", "blue", "seeds", "tree"),
    "fox": ("foxes", "red", "eggs", "den"),
    "frog": ("frogs", "green", "flies", "pond"),
    "bear": ("bears", "white", "honey", "cave"),
    "mouse": ("mice", "gray", "cheese", "hole"),
    "owl": ("owls", "yellow", "bugs", "barn"),
}
ADJS = ["big", "small", "old", "young", "happy", "sleepy", "quick", "quiet"]
VERBS = [("sees", "see"), ("likes", "like"), ("chases", "chase"), ("finds", "find"),
         ("helps", "help"), ("follows", "follow")]
PREPS = ["near", "behind", "with"]
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
           "eleven", "twelve"]
NAMES = ["tom", "ann", "max", "lily", "sam", "mia", "ben", "zoe"]
COLOURS = ["red", "blue", "green", "yellow", "black", "white", "pink", "gray"]
THINGS = ["hat", "ball", "box", "cup", "kite", "book"]
FOODS = sorted({v[2] for v in ANIMALS.values()})
HOMES = sorted({v[3] for v in ANIMALS.values()})


def noun_phrase(r, plural=None):
    """('the big cats', is_plural)"""
    a = r.choice(list(ANIMALS))
    p = r.random() < 0.5 if plural is None else plural
    word = ANIMALS[a][0] if p else a
    adj = r.choice(ADJS) + " " if r.random() < 0.5 else ""
    return f"the {adj}{word}", p


def agreement(r):
    """subject [prep phrase] verb object: returns (prefix up to the verb, verb, rest)"""
    subj, plural = noun_phrase(r)
    if r.random() < 0.6:
        inner, _ = noun_phrase(r)  # its number is independent: the verb must skip over it
        subj = f"{subj} {r.choice(PREPS)} {inner}"
    sing, plur = r.choice(VERBS)
    obj, _ = noun_phrase(r)
    return subj, (plur if plural else sing), (sing if plural else plur), f"{obj} ."


def fact(r):
    """(prefix, answer, distractor pool, suffix)"""
    a = r.choice(list(ANIMALS))
    pl, colour, food, home = ANIMALS[a]
    plural = r.random() < 0.5
    subj = pl if plural else f"the {a}"
    kind = r.randrange(3)
    if kind == 0:
        return f"{subj} {'eat' if plural else 'eats'}", food, FOODS, " ."
    if kind == 1:
        return f"{subj} {'live' if plural else 'lives'} in the", home, HOMES, " ."
    return f"{subj} {'are' if plural else 'is'}", colour, sorted({v[1] for v in ANIMALS.values()}), " ."


def counting(r):
    """by ones or by twos: the next number depends on the last two, not just the last one"""
    step, n = r.choice((1, 2)), r.randint(3, 5)
    s = r.randrange(len(NUMBERS) - step * (n - 1))
    seq = NUMBERS[s:s + step * (n - 1) + 1:step]
    return f"{r.choice(NAMES)} counts " + " ".join(seq[:-1]), seq[-1], " ."


def recall(r):
    k = 2
    names = r.sample(NAMES, k)
    colours = r.sample(COLOURS, k)
    thing = r.choice(THINGS)
    intro = " ".join(f"{n} has a {c} {thing} ." for n, c in zip(names, colours))
    i = r.randrange(k)
    return f"{intro} the {thing} of {names[i]} is", colours[i], colours, " ."


def sentence(r):
    t = r.random()
    if t < 0.35:
        pre, good, _, rest = agreement(r)
        return f"{pre} {good} {rest}"
    if t < 0.7:
        pre, ans, _, end = fact(r)
        return f"{pre} {ans}{end}"
    if t < 0.8:
        pre, ans, end = counting(r)
        return f"{pre} {ans}{end}"
    pre, ans, _, end = recall(r)
    return f"{pre} {ans}{end}"


def document(r):
    return " ".join(sentence(r) for _ in range(r.randint(3, 7)))


def task_items(r, kind, n):
    items = []
    for _ in range(n):
        if kind == "agree":
            pre, good, bad, _ = agreement(r)
            choices = [good, bad]
        elif kind == "facts":
            pre, good, pool, _ = fact(r)
            choices = [good] + r.sample([x for x in pool if x != good], 3)
        elif kind == "count":
            pre, good, _ = counting(r)
            choices = [good] + r.sample([x for x in NUMBERS if x != good], 3)
        else:
            pre, good, choices, _ = recall(r)
            choices = list(choices)
        r.shuffle(choices)
        items.append({"query": pre, "choices": choices, "gold": choices.index(good)})
    return items


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--train", type=int, default=20000, help="training documents")
    ap.add_argument("--valid", type=int, default=200, help="held-out documents for training")
    ap.add_argument("--test", type=int, default=500, help="test documents (ppl)")
    ap.add_argument("--items", type=int, default=200, help="items per task")
    a = ap.parse_args()
    os.makedirs(os.path.join(a.outdir, "tasks"), exist_ok=True)
    r = random.Random(a.seed)
    for name, n in (("train", a.train), ("valid", a.valid), ("test", a.test)):
        with open(os.path.join(a.outdir, name + ".txt"), "w") as f:
            for _ in range(n):
                f.write(document(r) + "\n")
    for kind in ("agree", "facts", "count", "recall"):
        with open(os.path.join(a.outdir, "tasks", f"synth_{kind}.jsonl"), "w") as f:
            for it in task_items(r, kind, a.items):
                f.write(json.dumps(it) + "\n")


if __name__ == "__main__":
    main()
