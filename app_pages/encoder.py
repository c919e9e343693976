"""Stage 5: the pre-LayerNorm encoder block, token norms, the logit lens and the prediction."""

import re

import streamlit as st
import torch

from ui import compute, models, state, widgets
from ui.i18n import _
from vit import plots
from vit.predict import Prediction, prediction_from_logits

choice = state.current_model()
model, cfg = choice.model, choice.model.config
trace = compute.current_trace()
L = cfg.depth
T, D = trace["hidden_states"].shape[-2:]

st.title(_("5. Encoder blocks and the prediction"))
widgets.explain(
    _("The tokens pass through {layers} identical **encoder blocks**. Each block first normalises the tokens "
      "(LayerNorm, *before* each sub-layer: \"pre-LN\"), lets them exchange information by multi-head "
      "self-attention, and adds the result back onto its input (a **residual connection**). Then each token "
      "goes on its own through a small MLP ({d} → {m} → {d}, with a GELU in between), again added "
      "back. The shapes never change, so blocks can be stacked as deep as you like.").format(layers=L, d=D, m=cfg.mlp_dim),
    r"\mathbf{z}'_\ell = \text{MSA}(\text{LN}(\mathbf{z}_{\ell-1})) + \mathbf{z}_{\ell-1}, \qquad "
    r"\mathbf{z}_\ell = \text{MLP}(\text{LN}(\mathbf{z}'_\ell)) + \mathbf{z}'_\ell")
st.latex(r"\mathbf{y} = \text{LN}(\mathbf{z}_L^0)")


st.subheader(_("One block, with your shapes"))
diagram, notes = widgets.columns([1, 1])
with diagram:
    st.html(widgets.flow_diagram_html([
        (_("input z(l-1): {t} × {d}").format(t=T, d=D), "plain", ""),
        (_("LayerNorm"), "norm", ""),
        (_("Multi-head attention") + "\n" + _("{heads} heads × {dh} dims").format(heads=cfg.heads, dh=cfg.head_dim),
         "attention", ""),
        ("+", "add", _("the input is added back (residual)")),
        (_("LayerNorm"), "norm", ""),
        (_("MLP: Linear → GELU → Linear") + f"\n{D} → {cfg.mlp_dim} → {D}", "mlp", ""),
        ("+", "add", _("the input is added back (residual)")),
        (_("output z(l): {t} × {d}").format(t=T, d=D), "plain", ""),
    ]))
with notes:
    st.markdown("\n".join("- " + item for item in (
        _("**LayerNorm** rescales each token to mean 0 and variance 1 (then a learned scale and shift). It comes "
          "*before* each sub-layer (\"pre-LN\"), which keeps training of deep stacks stable."),
        _("**Multi-head attention** mixes information *between* tokens: {heads} heads, each working in {dh} "
          "dimensions, all {t} tokens at once. See page 4.").format(heads=cfg.heads, dh=cfg.head_dim, t=T),
        _("**+ (residual)**: the block's input is added back to what the sub-layer computed, so each block only has "
          "to learn a *change*, and the original signal can pass straight through."),
        _("**MLP** works on each token *separately*: {d} → {m} numbers, a GELU non-linearity (a smooth ReLU: "
          "GELU(x) = x·Φ(x)), then back to {d}.").format(d=D, m=cfg.mlp_dim),
        _("Input and output have the same shape, {t} × {d}, so this block is stacked {layers} times.")
        .format(t=T, d=D, layers=L),
    )))

st.subheader(_("Token norms across the layers"))
st.markdown(_("The length of every token after every block. Residual connections only ever *add*, so tokens "
              "tend to grow with depth; the [class] token starts as one shared vector and fills up with "
              "information about the image."))
widgets.plot(plots.token_norms_figure(trace["token_norms"]), key="token_norms",
             name=widgets.figure_name("encoder", figure="token-norms"))


def class_text(name: str) -> str:
    """A class name as shown: a bundled model's class in the page's language, 'class 3' likewise."""
    numbered = re.fullmatch(r"class (\d+)", name)
    return _("class {i}").format(i=numbered.group(1)) if numbered else state.class_label(name)


def rule_words(pred: Prediction) -> str:
    """The known rule's test for this image, e.g. 'its top probability, 42.0%, is below the threshold of 50.0%'."""
    reaches = pred.score >= pred.threshold
    if pred.rule["score"] == "max_prob":
        words = (_("its top probability, {score}, reaches the threshold of {threshold}") if reaches
                 else _("its top probability, {score}, is below the threshold of {threshold}"))
        words = words.format(score=widgets.percent(pred.score), threshold=widgets.percent(pred.threshold))
    else:
        words = (_("its energy score (the log-sum-exp of the logits), {score}, reaches the threshold of {threshold}")
                 if reaches else
                 _("its energy score (the log-sum-exp of the logits), {score}, is below the threshold of {threshold}"))
        words = words.format(score=f"{pred.score:.2f}", threshold=f"{pred.threshold:.2f}")
    keep = pred.rule.get("keep")
    if not keep:
        return words
    return _("{test} (set so that {keep} of held-out training-like images pass)").format(
        test=words, keep=widgets.percent(keep, 0))


def verdict(pred: Prediction, names: list[str]) -> None:
    """The answer, or "Not recognised" with the reason and the guess the model would make if forced."""
    softmax = _("A softmax always picks one of its classes, even for a picture of something the model has never seen.")
    if pred.known:
        st.metric(_("Prediction"), class_text(pred.labels[0]),
                  _("{p} confident").format(p=widgets.percent(pred.probs[0])), delta_color="off", delta_arrow="off")
        if pred.rule is None:
            st.caption(_("No \"I don't know\" rule was calibrated for this model, so it always names one of its "
                         "classes.") + " " + softmax)
        else:
            st.caption(_("Recognised by this model's \"I don't know\" rule: {rule}.").format(rule=rule_words(pred)))
        return
    nothing = pred.rule.get("nothing_class")
    symbols = model.meta.get("dataset") == "symbols"
    data = models.trained_on(model)
    if pred.reason == "nothing":
        st.metric(_("Prediction"), _("No digit or arrow") if symbols else _("Nothing it knows"))
        won = (_("**The class *{nothing}* won** ({p}): the model sees no digit or arrow.") if symbols
               else _("**The class *{nothing}* won** ({p}): the model sees none of the things it knows."))
        st.info(" ".join((
            won.format(nothing=class_text(nothing), p=widgets.percent(pred.all_probs[names.index(nothing)])),
            _("It was trained on {data}, and on scenes with none of them (the class *{nothing}*).").format(
                data=data, nothing=class_text(nothing)),
            softmax,
            _("This model has a class for \"none of them\", and it won."))))
    else:
        st.metric(_("Prediction"), _("Not recognised"))
        st.info(" ".join((
            _("**Not sure enough to answer.** This model was trained on {data}.").format(data=data),
            _("A softmax always picks one of its classes, even for a picture of something the model has never seen, "
              "so the top class alone means little."),
            _("Its \"I don't know\" rule accepts an answer only when the model is confident enough: here {rule}.")
            .format(rule=rule_words(pred)))))
    forced = (_("Forced to choose one of its symbols, it would say “{guess}” ({p}).") if symbols
              else _("Forced to choose one of its classes, it would say “{guess}” ({p})."))
    st.caption(forced.format(guess=class_text(pred.guess), p=widgets.percent(pred.guess_prob)))


def prediction() -> None:
    names = list(model.class_names or [f"class {i}" for i in range(cfg.num_classes)])
    shown = [class_text(n) for n in names]
    widgets.explain(
        _("After the last block the [class] token is normalised once more and mapped to one score (logit) per "
          "class by a linear layer ({d} → {c}); a softmax turns the scores into probabilities. (For pre-training "
          "the paper used an MLP head with one hidden layer; for fine-tuning a single linear layer.)")
        .format(d=D, c=cfg.num_classes),
        r"p(c \mid \mathbf{x}) = \text{softmax}\big(\mathbf{W}\,\text{LN}(\mathbf{z}_L^0) + \mathbf{b}\big)_c")
    if model.meta.get("untrained"):
        st.warning(_("This model is untrained: its predictions are close to a guess."))
    pred = prediction_from_logits(torch.from_numpy(trace["logits"]), names, model.meta.get("known_rule"))
    verdict(pred, names)
    k = widgets.int_slider(_("How many classes"), 1, min(10, cfg.num_classes), min(5, cfg.num_classes), key="topk")
    widgets.plot(plots.top_k_figure(trace["probs"], shown, k=k), key="topk_plot",
                 name=widgets.figure_name("encoder", figure="top-k", k=k))
    softmax = _("The softmax over all {n} classes: it sums to 100% whatever the image.").format(n=cfg.num_classes)
    if pred.known:
        softmax += " " + _("This model was trained on {data}.").format(data=models.trained_on(model))
    st.caption(softmax)

    st.subheader(_("Logit lens: what would the model say after each block?"))
    st.markdown(_("Apply the final LayerNorm and the head to the [class] token after *every* block, not just the "
                  "last. Early blocks are usually unsure; watch where the final answer first appears."))
    lens = trace["lens_probs"]
    blocks = " → ".join(f"{i}: {shown[int(c)]}" for i, c in enumerate(lens.argmax(-1)))
    widgets.plot(plots.logit_lens_figure(lens, shown), key="logit_lens", name=widgets.figure_name("encoder", figure="logit-lens"))
    st.caption((_("Top-1 after each block: {blocks}") if pred.known else
                _("Top-1 after each block: {blocks} (the softmax's pick, which the \"I don't know\" rule did not accept)"))
               .format(blocks=blocks))


st.subheader(_("The head"))
if cfg.num_classes == 0 or "probs" not in trace:
    st.info(_("This model has **no classification head** (a feature extractor, like DINO's). Its output is the "
              "final [class] token: a vector of {d} numbers, used by other models downstream.").format(d=D))
else:
    prediction()
