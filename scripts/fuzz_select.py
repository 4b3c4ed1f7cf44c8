#!/usr/bin/env python3
"""Picks a few dozen seeds for one fuzz target from a libFuzzer merge's
control file: greedily, the input that reaches the most edges not yet
reached, until LIMIT inputs or no input adds an edge. Prints their paths.

usage: fuzz_select.py CONTROL_FILE LIMIT
"""
import sys

control, limit = sys.argv[1], int(sys.argv[2])
with open(control, encoding="utf-8", errors="replace") as f:
    lines = f.read().splitlines()
count = int(lines[0])
paths = lines[2:2 + count]
def recorded(kind):
    found = {}
    for line in lines[2 + count:]:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == kind:
            found[int(parts[1])] = set(parts[2:])
    return found


# Edges (COV), or features (FT) from a libFuzzer that records no edges.
edges = recorded("COV") or recorded("FT")
reached, chosen = set(), []
while len(chosen) < limit:
    best = max(edges, key=lambda i: len(edges[i] - reached), default=None)
    if best is None or not edges[best] - reached:
        break
    chosen.append(best)
    reached |= edges.pop(best)
for i in chosen:
    print(paths[i])
