"""Pure scoring of root-cause predictions against the injected truth.

In:  truth and predicted root causes as lists of elements; an element is a
     mapping {dimension: member} (member may be None, i.e. JSON null).
Out: per-case (tp, fp, fn) and micro-averaged (precision, recall, f1).

One item = one element, compared as a set of (dimension, member) pairs; only
an exact match counts, so a parent ({a: a3}) or a child ({a: a3, b: b1}) of a
true element {a: a3, c: c1} is a false positive and the true element a false
negative. Duplicate predictions count once.
"""

from __future__ import annotations

from typing import Iterable, Mapping

Item = frozenset  # frozenset of (dimension, member) pairs


def as_item(element: Mapping[str, str | None]) -> Item:
    """An element as a hashable, order-free set of (dimension, member) pairs."""
    return frozenset((str(dim), None if member is None else str(member))
                     for dim, member in element.items())


def score_case(truth: Iterable[Mapping], predicted: Iterable[Mapping]) -> tuple[int, int, int]:
    """(tp, fp, fn) of one case: exact element matches only."""
    t = {as_item(e) for e in truth}
    p = {as_item(e) for e in predicted}
    tp = len(t & p)
    return tp, len(p - t), len(t - p)


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Micro precision, recall, F1 from pooled counts.

    An empty prediction has precision 0 by convention here (not undefined),
    so predicting nothing never scores.
    """
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def pooled(counts: Iterable[tuple[int, int, int]]) -> tuple[float, float, float]:
    """prf over the sum of several cases' (tp, fp, fn)."""
    tp = fp = fn = 0
    for a, b, c in counts:
        tp, fp, fn = tp + a, fp + b, fn + c
    return prf(tp, fp, fn)
