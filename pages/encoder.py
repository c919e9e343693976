"""Stage 5: the pre-LayerNorm encoder block, token norms, the logit lens and the prediction."""

import streamlit as st
import torch

from ui import compute, models, state, widgets
from vit import plots
from vit.predict import Prediction, prediction_from_logits

choice = state.current_model()
model, cfg = choice.model, choice.model.config
trace = compute.current_trace()
L = cfg.depth
T, D = trace["hidden_states"].shape[-2:]

st.title("5. Encoder blocks and the prediction")
widgets.explain(
    f"The tokens pass through {L} identical **encoder blocks**. Each block first normalises the tokens "
    "(LayerNorm, *before* each sub-layer: \"pre-LN\"), lets them exchange information by multi-head "
    "self-attention, and adds the result back onto its input (a **residual connection**). Then each token "
    f"goes on its own through a small MLP ({D} → {cfg.mlp_dim} → {D}, with a GELU in between), again added "
    "back. The shapes never change, so blocks can be stacked as deep as you like.",
    r"\mathbf{z}'_\ell = \text{MSA}(\text{LN}(\mathbf{z}_{\ell-1})) + \mathbf{z}_{\ell-1}, \qquad "
    r"\mathbf{z}_\ell = \text{MLP}(\text{LN}(\mathbf{z}'_\ell)) + \mathbf{z}'_\ell, \qquad "
    r"\mathbf{y} = \text{LN}(\mathbf{z}_L^0)")

st.subheader("One block, with your shapes")
diagram, notes = st.columns([2, 3])
with diagram:
    st.graphviz_chart(f"""
digraph block {{
  rankdir=TB; nodesep=0.3; ranksep=0.25;
  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica", fontsize=16, width=3.6];
  zin [label="input z(l-1): {T} × {D}", fillcolor="#ffffff"];
  ln1 [label="LayerNorm"];
  msa [label="Multi-head attention\n{cfg.heads} heads × {cfg.head_dim} dims", fillcolor="#fde8d7"];
  add1 [label="+", shape=circle, width=0.45, fontsize=20];
  ln2 [label="LayerNorm"];
  mlp [label="MLP: Linear → GELU → Linear\n{D} → {cfg.mlp_dim} → {D}", fillcolor="#e3f4e1"];
  add2 [label="+", shape=circle, width=0.45, fontsize=20];
  zout [label="output z(l): {T} × {D}", fillcolor="#ffffff"];
  zin -> ln1 -> msa -> add1 -> ln2 -> mlp -> add2 -> zout;
  zin -> add1 [style=dashed, xlabel="residual", fontsize=13];
  add1 -> add2 [style=dashed, xlabel="residual", fontsize=13];
}}""")
with notes:
    st.markdown(f"""
- **LayerNorm** rescales each token to mean 0 and variance 1 (then a learned scale and shift). It comes
  *before* each sub-layer ("pre-LN"), which keeps training of deep stacks stable.
- **Multi-head attention** mixes information *between* tokens: {cfg.heads} heads, each working in
  {cfg.head_dim} dimensions, all {T} tokens at once. See page 4.
- **+ (residual)**: the block's input is added back to what the sub-layer computed, so each block only has
  to learn a *change*, and the original signal can pass straight through.
- **MLP** works on each token *separately*: {D} → {cfg.mlp_dim} numbers, a GELU non-linearity
  (a smooth ReLU: GELU(x) = x·Φ(x)), then back to {D}.
- Input and output have the same shape, {T} × {D}, so this block is stacked {L} times.
""")

st.subheader("Token norms across the layers")
st.markdown("The length of every token after every block. Residual connections only ever *add*, so tokens "
            "tend to grow with depth; the [class] token starts as one shared vector and fills up with "
            "information about the image.")
widgets.plot(plots.token_norms_figure(trace["token_norms"]), key="token_norms")


def rule_words(pred: Prediction) -> str:
    """The known rule's test for this image, e.g. 'its top probability, 42.0%, is below the threshold of 50.0%'."""
    verb = "reaches" if pred.score >= pred.threshold else "is below"
    if pred.rule["score"] == "max_prob":
        words = f"its top probability, {pred.score:.1%}, {verb} the threshold of {pred.threshold:.1%}"
    else:
        words = (f"its energy score (the log-sum-exp of the logits), {pred.score:.2f}, {verb} the threshold "
                 f"of {pred.threshold:.2f}")
    keep = pred.rule.get("keep")
    return words + (f" (set so that {keep:.0%} of held-out training-like images pass)" if keep else "")


def verdict(pred: Prediction, names: list[str]) -> None:
    """The answer, or "Not recognised" with the reason and the guess the model would make if forced."""
    softmax = "A softmax always picks one of its classes, even for a picture of something the model has never seen."
    if pred.known:
        st.metric("Prediction", pred.labels[0], f"{pred.probs[0]:.1%} confident", delta_color="off", delta_arrow="off")
        if pred.rule is None:
            st.caption(f"No \"I don't know\" rule was calibrated for this model, so it always names one of its "
                       f"classes. {softmax}")
        else:
            st.caption(f"Recognised by this model's \"I don't know\" rule: {rule_words(pred)}.")
        return
    nothing = pred.rule.get("nothing_class")
    symbols = model.meta.get("dataset") == "symbols"
    if pred.reason == "nothing":
        st.metric("Prediction", "No digit or arrow" if symbols else "Nothing it knows")
        st.info(f"**The class *{nothing}* won** ({pred.all_probs[names.index(nothing)]:.1%}): the model sees "
                f"{'no digit or arrow' if symbols else 'none of the things it knows'}. It was trained on "
                f"{models.trained_on(model)}, and on scenes with none of them (the class *{nothing}*). {softmax} "
                f"This model has a class for \"none of them\", and it won.")
    else:
        st.metric("Prediction", "Not recognised")
        st.info(f"**Not sure enough to answer.** This model was trained on {models.trained_on(model)}. {softmax[:-1]}, "
                f"so the top class alone means little. Its \"I don't know\" rule accepts an answer only when the model "
                f"is confident enough: here {rule_words(pred)}.")
    st.caption(f"Forced to choose one of its {'symbols' if symbols else 'classes'}, it would say "
               f"“{pred.guess}” ({pred.guess_prob:.1%}).")


def prediction() -> None:
    names = list(model.class_names or [f"class {i}" for i in range(cfg.num_classes)])
    widgets.explain(
        "After the last block the [class] token is normalised once more and mapped to one score (logit) per "
        f"class by a linear layer ({D} → {cfg.num_classes}); a softmax turns the scores into probabilities. "
        "(For pre-training the paper used an MLP head with one hidden layer; for fine-tuning a single linear layer.)",
        r"p(c \mid \mathbf{x}) = \text{softmax}\big(\mathbf{W}\,\text{LN}(\mathbf{z}_L^0) + \mathbf{b}\big)_c")
    if model.meta.get("untrained"):
        st.warning("This model is untrained: its predictions are close to a guess.")
    pred = prediction_from_logits(torch.from_numpy(trace["logits"]), names, model.meta.get("known_rule"))
    verdict(pred, names)
    k = st.slider("How many classes", 1, min(10, cfg.num_classes), min(5, cfg.num_classes), key="topk")
    widgets.plot(plots.top_k_figure(trace["probs"], names, k=k), key="topk_plot")
    st.caption(f"The softmax over all {cfg.num_classes} classes: it sums to 100% whatever the image."
               + (f" This model was trained on {models.trained_on(model)}." if pred.known else ""))

    st.subheader("Logit lens: what would the model say after each block?")
    st.markdown("Apply the final LayerNorm and the head to the [class] token after *every* block, not just the "
                "last. Early blocks are usually unsure; watch where the final answer first appears.")
    lens = trace["lens_probs"]
    per_layer = [names[int(i)] for i in lens.argmax(-1)]
    widgets.plot(plots.logit_lens_figure(lens, names), key="logit_lens")
    st.caption("Top-1 after each block: " + " → ".join(f"{i}: {n}" for i, n in enumerate(per_layer))
               + ("" if pred.known else " (the softmax's pick, which the \"I don't know\" rule did not accept)"))


st.subheader("The head")
if cfg.num_classes == 0 or "probs" not in trace:
    st.info("This model has **no classification head** (a feature extractor, like DINO's). Its output is the "
            f"final [class] token: a vector of {D} numbers, used by other models downstream.")
else:
    prediction()
