"""Writes data.csv: 600 points of a noisy two-class problem in 5 features (deterministic).

    python3 make_data.py      # rewrites data.csv, byte for byte the same every time
"""
import math
import os
import random

rng = random.Random(20261123)
true_w = [1.5, -2.0, 0.75, 0.0, 0.5]
rows = []
for _ in range(600):
    x = [rng.gauss(0.0, 1.0) for _ in true_w]
    z = sum(w * xi for w, xi in zip(true_w, x)) - 0.25 + rng.gauss(0.0, 1.0)
    label = 1 if 1.0 / (1.0 + math.exp(-z)) > rng.random() else 0
    rows.append(["%.4f" % xi for xi in x] + [str(label)])
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "data.csv"), "w", encoding="utf-8") as f:
    f.write("x1,x2,x3,x4,x5,label\n")
    for r in rows:
        f.write(",".join(r) + "\n")
