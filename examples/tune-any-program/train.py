"""Logistic regression by mini-batch SGD on data.csv, standard library only: a trial for
`ferrotune run`. Parameters come as command-line flags; the validation log-loss of every epoch
is reported as an intermediate value (so the pruner can stop a hopeless run early) and the last
one as the final value, with the validation accuracy alongside.

    python3 train.py --lr 0.1 --l2 1e-4 --batch-size 32 --optimizer momentum --momentum 0.9
"""
import argparse
import csv
import math
import os
import random
import sys

sys.dont_write_bytecode = True  # no __pycache__ beside the example
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ferrotune_report import report  # noqa: E402  (written by `ferrotune helper python --write`)

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--l2", type=float, default=0.0)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--optimizer", choices=["sgd", "momentum"], default="sgd")
parser.add_argument("--momentum", type=float, default=0.0)
parser.add_argument("--epochs", type=int, default=30)
args = parser.parse_args()

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "data.csv")) as f:
    rows = [[float(v) for v in r] for r in list(csv.reader(f))[1:]]
train, valid = rows[:450], rows[450:]
n_features = len(rows[0]) - 1


def predict(w, b, x):
    z = b + sum(wi * xi for wi, xi in zip(w, x))
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def evaluate(w, b):
    loss, correct = 0.0, 0
    for r in valid:
        p = min(max(predict(w, b, r[:-1]), 1e-12), 1 - 1e-12)
        loss -= r[-1] * math.log(p) + (1 - r[-1]) * math.log(1 - p)
        correct += (p > 0.5) == (r[-1] == 1)
    return loss / len(valid), correct / len(valid)


rng = random.Random(0)
w, b = [0.0] * n_features, 0.0
vw, vb = [0.0] * n_features, 0.0
beta = args.momentum if args.optimizer == "momentum" else 0.0
for epoch in range(args.epochs):
    rng.shuffle(train)
    for start in range(0, len(train), args.batch_size):
        batch = train[start:start + args.batch_size]
        gw, gb = [args.l2 * wi for wi in w], 0.0
        for r in batch:
            err = predict(w, b, r[:-1]) - r[-1]
            gw = [g + err * xi / len(batch) for g, xi in zip(gw, r[:-1])]
            gb += err / len(batch)
        vw = [beta * v + g for v, g in zip(vw, gw)]
        vb = beta * vb + gb
        w = [wi - args.lr * v for wi, v in zip(w, vw)]
        b -= args.lr * vb
    val_loss, val_acc = evaluate(w, b)
    report(step=epoch, val_loss=val_loss, val_acc=val_acc)
report(val_loss=val_loss, val_acc=val_acc)
