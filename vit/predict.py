"""A prediction that can say "I don't know": ``vit.predict(model, image) -> vit.Prediction``.

A softmax always picks one of its classes, even for a picture of something the model never saw.
So each bundled model carries a **known rule** in its JSON (``known_rule``), calibrated on held-out
data by :func:`calibrate_known_rule`:

- ``nothing_class``: the name of a class trained on scenes without any of the model's objects
  (the symbols model has ``nothing``), or None. If it wins, the image is not known.
- ``score`` and ``threshold``: ``max_prob`` (the top softmax probability) or ``energy`` (the
  log-sum-exp of the logits; Liu et al. 2020); the image is known only if the score reaches the
  threshold. The threshold keeps a chosen share of held-out in-domain images known, and the score
  is whichever of the two wrongly accepts fewer out-of-domain calibration images at that share.

A model without a rule (a user's own checkpoint) predicts as before, with ``known`` True and
``rule`` None: nothing was calibrated, so nothing can be claimed either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from .loading import preprocess
from .model import VisionTransformer

__all__ = ["Prediction", "predict", "known_scores", "decide_known", "calibrate_known_rule"]

SCORES = ("max_prob", "energy")


@dataclass(frozen=True)
class Prediction:
    """What the model says about one image.

    ``labels`` and ``probs`` are the ``top_k`` classes, best first. ``known`` is False when the image
    does not look like anything the model was trained on; ``guess`` is then the answer it would give
    if forced (its most likely real class, never the "nothing" class), with ``guess_prob``.
    """

    labels: list[str]
    probs: list[float]
    known: bool
    guess: str
    guess_prob: float
    score: float | None = None            # the rule's score for this image
    threshold: float | None = None        # the rule's threshold
    rule: dict | None = None              # the model's known_rule, or None if it has none
    reason: str = ""                      # why known is False: "nothing", "low-score", or "" when known
    all_probs: list[float] = field(default_factory=list, repr=False)  # every class, in the model's order


def known_scores(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Both scores for (B, classes) logits: max softmax probability and energy (log-sum-exp)."""
    logits = logits.float()
    return {"max_prob": logits.softmax(-1).amax(-1), "energy": torch.logsumexp(logits, -1)}


def decide_known(logits: torch.Tensor, rule: dict | None, class_names: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Vectorised rule: (known (B,) bool, score (B,), reason per image) for (B, classes) logits."""
    b = logits.shape[0]
    if not rule:
        return torch.ones(b, dtype=torch.bool), torch.full((b,), float("nan")), [""] * b
    score = known_scores(logits)[rule["score"]]
    known = score >= float(rule["threshold"])
    reasons = ["" if k else "low-score" for k in known.tolist()]
    nothing = rule.get("nothing_class")
    if nothing is not None and nothing in class_names:
        top = logits.argmax(-1)
        is_nothing = top == class_names.index(nothing)
        known &= ~is_nothing
        reasons = ["nothing" if n else r for n, r in zip(is_nothing.tolist(), reasons)]
    return known, score, reasons


def predict(model: VisionTransformer, image: Image.Image, top_k: int = 5, fit: str | None = None) -> Prediction:
    """Run ``model`` on a PIL image and apply its known rule (see the module docstring)."""
    if model.config.num_classes < 1:
        raise ValueError("this model has no classification head, so it makes no predictions")
    names = list(model.class_names or [f"class {i}" for i in range(model.config.num_classes)])
    x = preprocess(image, model, fit=fit).to(next(model.parameters()).device)
    with torch.inference_mode():
        logits = model(x).float().cpu()
    return prediction_from_logits(logits[0], names, model.meta.get("known_rule"), top_k)


def prediction_from_logits(logits: torch.Tensor, names: list[str], rule: dict | None, top_k: int = 5) -> Prediction:
    """A :class:`Prediction` from one image's (classes,) logits."""
    probs = logits.float().softmax(-1)
    k = max(1, min(int(top_k), len(names)))
    p, idx = probs.topk(k)
    known, score, reasons = decide_known(logits[None], rule, names)
    nothing = (rule or {}).get("nothing_class")
    real = [i for i in probs.argsort(descending=True).tolist() if names[i] != nothing]
    g = real[0] if real else int(probs.argmax())
    s = float(score[0])
    return Prediction(labels=[names[i] for i in idx.tolist()], probs=[float(v) for v in p], known=bool(known[0]),
                      guess=names[g], guess_prob=float(probs[g]), score=None if np.isnan(s) else s,
                      threshold=None if not rule else float(rule["threshold"]), rule=rule, reason=reasons[0],
                      all_probs=[float(v) for v in probs])


def calibrate_known_rule(logits_in: torch.Tensor, logits_out: torch.Tensor, class_names: list[str], *,
                         keep: float = 0.97, nothing_class: str | None = None, labels_in: torch.Tensor | None = None,
                         description: str = "") -> dict:
    """Choose the score and threshold that keep ``keep`` of the in-domain images known.

    ``logits_in``: held-out in-domain images whose class is a real one (never the nothing class);
    ``logits_out``: out-of-domain calibration images (and, for a model with a nothing class, its
    held-out nothing images). For each score, the threshold is set so that ``keep`` of all the
    in-domain images are known (those the nothing class already rejects count as lost, so the
    threshold is lower where it rejects many); the score that wrongly accepts the fewest
    out-of-domain images wins (ties: max_prob, the simpler one). Returns the rule for the
    model's JSON, with the measurements behind the choice.
    """
    if not 0 < keep < 1:
        raise ValueError("keep must be between 0 and 1")
    results = {}
    for score in SCORES:
        probe = {"score": score, "threshold": -float("inf"), "nothing_class": nothing_class}
        passed_in, s_in, _ = decide_known(logits_in, probe, class_names)
        candidates = s_in[passed_in].double()
        # the share of all in-domain images kept known is `keep`: the nothing class's misses count against it
        q = 1 - keep * len(logits_in) / len(candidates) if len(candidates) else 1.0
        if not len(candidates):
            threshold = float("inf")
        elif q <= 0:
            threshold = float(candidates.min())
        else:
            threshold = float(torch.quantile(candidates, q))
        rule = {**probe, "threshold": threshold}
        k_in = decide_known(logits_in, rule, class_names)[0].float().mean().item()
        k_out = decide_known(logits_out, rule, class_names)[0].float().mean().item() if len(logits_out) else 0.0
        results[score] = {"threshold": threshold, "known_in": k_in, "known_out": k_out}
    best = min(SCORES, key=lambda s: (results[s]["known_out"], SCORES.index(s)))
    rule = {"score": best, "threshold": results[best]["threshold"], "nothing_class": nothing_class,
            "keep": keep, "calibration": {"description": description, "in_domain_images": len(logits_in),
                                          "out_of_domain_images": len(logits_out), "by_score": results}}
    if labels_in is not None:
        known = decide_known(logits_in, rule, class_names)[0]
        correct = logits_in.argmax(-1) == labels_in
        rule["calibration"]["accuracy_when_known"] = float(correct[known].float().mean()) if known.any() else None
    return rule
