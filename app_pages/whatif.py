"""Stage 6: what if…? Change the forward pass (hide patches, switch off heads, remove the position
embeddings, shuffle the patches), guess what will happen, then see it, explained from the numbers.
Then the explanation maps side by side, and how far to trust each.

Patches and heads are numbered from 1 on screen, 0-based in the session state and in ``vit.Intervention``.
State: ``wi_hide`` (patch indices), ``wi_heads`` ((layer, head) pairs), ``wi_positions`` ("keep",
"after": off after the change only, "both": off before and after), ``wi_shuffle`` (a permutation or None),
``wi_preset`` (the preset that set them, for its question), ``wi_revealed`` (the change whose result
the student has seen). Results are cached per (model, image, fit, intervention).
"""

import numpy as np
import streamlit as st
import torch

import vit
from ui import compute, state, widgets
from ui.i18n import N_, _, ngettext
from ui.models import model_slot
from vit import plots, whatif
from vit.intervention import Intervention
from vit.predict import prediction_from_logits

choice = state.current_model()
model, cfg = choice.model, choice.model.config
picture, fit = state.current_image(), state.current_fit()
trace = compute.current_trace()
image = trace["input"]
gh, gw = (int(v) for v in trace["grid"])
N, L, H = gh * gw, cfg.depth, cfg.heads
HAS_HEAD = cfg.num_classes > 0 and "probs" in trace
NAMES = list(model.class_names or [f"class {i}" for i in range(cfg.num_classes)])
ss = st.session_state
POSITIONS = {"keep": N_("kept"), "after": N_("off after the change"), "both": N_("off before and after")}
GUESSES = {"same": N_("No: it stays exactly the same"), "confidence": N_("Same answer, different confidence"),
           "changed": N_("Yes: a different answer")}
METHOD_NAMES = {"attention": N_("raw attention"), "rollout": N_("attention rollout"), "gradient": N_("gradient method"),
                "occlusion": N_("occlusion"), "random": N_("random order")}


def class_text(i: int) -> str:
    """A class as shown: a bundled model's class in the page's language, 'class 3' likewise."""
    name = NAMES[i]
    return _("class {i}").format(i=name[6:]) if name.startswith("class ") and name[6:].isdigit() else state.class_label(name)


def points(delta: float) -> str:
    """A change of probability in percentage points, signed, never '-0.0'."""
    v = round(delta * 100, 1)
    return "0.0" if v == 0 else f"{v:+.1f}".replace("-", "−")


def head_name(layer: int, head: int) -> str:
    return f"L{layer + 1}·H{head + 1}"


# --- running the model, cached -------------------------------------------------------------------------


@st.cache_resource(max_entries=8, show_spinner=False)
def _x_shared(model_key: str, image_key: str, fit: str, _model, _image) -> torch.Tensor:
    return vit.preprocess(_image, _model, fit=fit).to(next(_model.parameters()).device)


@st.cache_data(max_entries=256, show_spinner=False)
def _run_shared(model_key: str, image_key: str, fit: str, iv_key: str, _model, _x, _iv) -> dict:
    with model_slot():
        return whatif.run(_model, _x, _iv)


@st.cache_data(max_entries=64, show_spinner=False)
def _heads_shared(model_key: str, image_key: str, fit: str, iv_key: str, _model, _x, _iv) -> whatif.HeadEffects:
    with model_slot():
        return whatif.head_effects(_model, _x, base=_iv)


@st.cache_data(max_entries=64, show_spinner=False)
def _explain_shared(model_key: str, image_key: str, fit: str, target: int, _model, _x) -> dict:
    with model_slot():
        return whatif.explanations(_model, _x, target)


@st.cache_data(max_entries=32, show_spinner=False)
def _sanity_shared(model_key: str, image_key: str, fit: str, target: int, _model, _x) -> dict:
    with model_slot():
        return whatif.sanity(_model, _x, target)


def cached(kind: str, key, shared, compute_it):
    """A shared model's results in ``st.cache_data``; a user's own checkpoint's only in this session."""
    if choice.shared:
        return shared()
    cache = ss.setdefault("wi_cache", {})
    k = (choice.key, picture.hash, fit, kind, key)
    if k not in cache:
        while len(cache) >= 32:
            cache.pop(next(iter(cache)))
        with model_slot():
            cache[k] = compute_it()
    return cache[k]


def model_input() -> torch.Tensor:
    if choice.shared:
        return _x_shared(choice.key, picture.hash, fit, model, picture.image)
    return cached("x", None, None, lambda: vit.preprocess(picture.image, model, fit=fit).to(next(model.parameters()).device))


X = model_input()


def result(iv: Intervention) -> dict:
    return cached("run", repr(iv), lambda: _run_shared(choice.key, picture.hash, fit, repr(iv), model, X, iv),
                  lambda: whatif.run(model, X, iv))


def head_effects(base: Intervention) -> whatif.HeadEffects:
    return cached("heads", repr(base), lambda: _heads_shared(choice.key, picture.hash, fit, repr(base), model, X, base),
                  lambda: whatif.head_effects(model, X, base=base))


CHEAP_HEADS = L * H <= 64 and N <= 256  # heads measured for the figure; a large model's only for its preset


# --- the state: what is changed --------------------------------------------------------------------------


def _defaults() -> None:
    ss["wi_hide"], ss["wi_heads"], ss["wi_positions"], ss["wi_shuffle"], ss["wi_preset"] = [], [], "keep", None, None


if "wi_hide" not in ss:
    _defaults()
ss["wi_hide"] = sorted({int(p) for p in ss["wi_hide"] if 0 <= int(p) < N})
ss["wi_heads"] = sorted({(int(a), int(b)) for a, b in ss["wi_heads"] if 0 <= int(a) < L and 0 <= int(b) < H})
if ss.get("wi_positions") not in POSITIONS:
    ss["wi_positions"] = "keep"
if ss.get("wi_shuffle") is not None and len(ss["wi_shuffle"]) != N:
    ss["wi_shuffle"] = None


def interventions() -> tuple[Intervention, Intervention]:
    """(before, after): 'before' lacks position embeddings only when they are removed before and after."""
    mode = ss["wi_positions"]
    before = Intervention(positions="zero") if mode == "both" else Intervention()
    after = Intervention(hide=tuple(ss["wi_hide"]), heads_off=tuple(ss["wi_heads"]), shuffle=ss["wi_shuffle"],
                         positions="keep" if mode == "keep" else "zero")
    return before, after


def _next_seed() -> int:
    ss["wi_seed"] = ss.get("wi_seed", 0) + 1
    return ss["wi_seed"]


def preset(name: str) -> None:
    """on_click of a preset button: start from nothing changed, then make the preset's change."""
    _defaults()
    ss["wi_preset"] = name
    if name in ("shuffle-no-positions", "shuffle"):
        ss["wi_positions"] = "both" if name == "shuffle-no-positions" else "keep"
        ss["wi_shuffle"] = whatif.cyclic_shuffle(N, _next_seed())
    elif name in ("ink", "not-ink"):
        ink = set(whatif.ink_patches(image, cfg.patch_size))
        ss["wi_hide"] = sorted(ink) if name == "ink" else [p for p in range(N) if p not in ink]
        ss["wi_ink_count"] = len(ink)
    elif name == "top-head":
        ss["wi_heads"] = [whatif.most_important_head(head_effects(Intervention()))]
    elif name == "random-head":
        avoid = whatif.most_important_head(head_effects(Intervention())) if HAS_HEAD and CHEAP_HEADS else None
        ss["wi_heads"] = [whatif.random_head(L, H, _next_seed(), avoid=avoid)]


def _changed_by_hand() -> None:
    ss["wi_preset"] = None


def _from_patch_pick() -> None:
    """on_change of "Hide or show a patch": toggle that patch, then clear the box for the next one."""
    number = ss.get("wi_patch_pick")
    if number is not None and 1 <= int(number) <= N:
        ss["wi_hide"] = sorted(set(ss["wi_hide"]) ^ {int(number) - 1})
        _changed_by_hand()
    ss["wi_patch_pick"] = None


def _from_head_pick() -> None:
    """on_change of "Switch a head off or on": toggle that head, then clear the box."""
    i = ss.get("wi_head_pick")
    if i is not None and 0 <= int(i) < L * H:
        ss["wi_heads"] = sorted(set(ss["wi_heads"]) ^ {divmod(int(i), H)})
        _changed_by_hand()
    ss["wi_head_pick"] = None


def _from_positions() -> None:
    ss["wi_positions"] = ss.get("wi_positions_pick", "keep")
    _changed_by_hand()


def _shuffle(on: bool) -> None:
    ss["wi_shuffle"] = whatif.cyclic_shuffle(N, _next_seed()) if on else None
    _changed_by_hand()


def _guess(pair: str, guess: str) -> None:
    ss["wi_revealed"], ss["wi_guess"] = pair, guess


def take_clicks() -> None:
    """Clicks on the patch grid and the heads figure toggle a patch or a head; the figure is then drawn
    under a new key, so that a second click on the same patch counts too."""
    grid_key = f"wi_grid_{ss.setdefault('wi_grid_n', 0)}"
    data = widgets.clicked(grid_key)
    if data:
        p = int(data[0])
        if 0 <= p < N:
            ss["wi_hide"] = sorted(set(ss["wi_hide"]) ^ {p})
            _changed_by_hand()
        ss["wi_grid_n"] += 1
    heads_key = f"wi_heads_{ss.setdefault('wi_heads_n', 0)}"
    data = widgets.clicked(heads_key)
    if data and len(data) >= 2:
        pair = (int(data[0]), int(data[1]))
        if 0 <= pair[0] < L and 0 <= pair[1] < H:
            ss["wi_heads"] = sorted(set(ss["wi_heads"]) ^ {pair})
            _changed_by_hand()
        ss["wi_heads_n"] += 1
    ss["wi_grid_key"], ss["wi_heads_key"] = f"wi_grid_{ss['wi_grid_n']}", f"wi_heads_{ss['wi_heads_n']}"


# --- words -------------------------------------------------------------------------------------------------


def change_words() -> str:
    """The change in words: '3 patches hidden, head L1·H2 off, position embeddings off'."""
    parts = []
    if ss["wi_hide"]:
        n = len(ss["wi_hide"])
        parts.append(ngettext("{n} patch hidden", "{n} patches hidden", n).format(n=n))
    if ss["wi_heads"]:
        names = ", ".join(head_name(a, b) for a, b in ss["wi_heads"])
        parts.append(ngettext("head {heads} off", "heads {heads} off", len(ss["wi_heads"])).format(heads=names))
    if ss["wi_positions"] == "after":
        parts.append(_("position embeddings off"))
    elif ss["wi_positions"] == "both":
        parts.append(_("position embeddings off, before and after"))
    if ss["wi_shuffle"] is not None:
        parts.append(_("patches shuffled"))
    return ", ".join(parts)


def question(kind: str) -> str:
    name = ss.get("wi_preset")
    if kind == "shuffle-no-positions":
        return _("The position embeddings are off, before and after. Will shuffling the patches change the prediction?")
    if kind == "shuffle":
        return _("Will shuffling the patches change the prediction?")
    if kind == "positions":
        return _("Will removing the position embeddings change the prediction?")
    if kind == "hide" and name == "ink":
        return _("Will hiding the ink change the prediction?")
    if kind == "hide" and name == "not-ink":
        return _("Will hiding everything but the ink change the prediction?")
    if kind == "hide":
        n = len(ss["wi_hide"])
        return ngettext("Will hiding {n} patch change the prediction?", "Will hiding {n} patches change the prediction?",
                        n).format(n=n)
    if kind == "heads" and name == "top-head":
        return _("Will switching off the most important head change the prediction?")
    if kind == "heads" and name == "random-head":
        return _("Will switching off a random head change the prediction?")
    if kind == "heads":
        n = len(ss["wi_heads"])
        return ngettext("Will switching off {n} head change the prediction?",
                        "Will switching off {n} heads change the prediction?", n).format(n=n)
    return _("Will these changes change the prediction?")


def why(kind: str, verdict: str, cls: str) -> str:
    """The second sentence: why, for this kind of change and what the numbers did."""
    calm = verdict in ("same", "small")
    if kind == "shuffle-no-positions":
        if verdict == "same":
            return _("Without position embeddings a ViT cannot tell where a patch is: self-attention treats the "
                     "patches as a set, so shuffling them changes nothing.")
        return _("Without position embeddings the order of the patches cannot matter, so a change this small can "
                 "only come from rounding in the computer's arithmetic.")
    if kind == "shuffle":
        return (_("With position embeddings each token knows where it sits, yet the answer held: on this image the "
                  "model relies more on what the patches show than on where they are.") if calm else
                _("With position embeddings each token knows where it sits, so the shuffled patches make a different "
                  "picture for the model, and its answer moves."))
    if kind == "positions":
        return (_("Without position embeddings the model no longer knows where each patch is, yet its answer barely "
                  "moves: on this image it relies mostly on what the patches show.") if calm else
                _("Without position embeddings the model no longer knows where each patch is, and its answer moves: "
                  "it uses where things are, not only what they are."))
    if kind == "hide":
        if calm:
            return _("The model did not need the hidden patches for this answer: the rest of the image carries the "
                     "evidence.")
        if verdict == "up":
            return _("The hidden patches spoke against “{cls}”: without them the model is more sure of it.").format(cls=cls)
        return _("The hidden patches carried evidence the model used for “{cls}”.").format(cls=cls)
    if kind == "heads":
        if calm:
            return _("The other heads and the residual connections carry what was switched off, so the answer "
                     "barely moves.")
        if verdict == "up":
            return _("Without these heads the model is more sure of “{cls}”: they pulled towards other classes.").format(cls=cls)
        return _("These heads did work the answer depends on: without them the [class] token gathers different "
                 "information.")
    if calm:
        return _("Together your changes barely touch what the model uses for this answer.")
    if verdict == "up":
        return _("Together your changes make the model more sure of “{cls}”.").format(cls=cls)
    return _("Together your changes remove or move information the model used for “{cls}”.").format(cls=cls)


def what_happened(o: whatif.Outcome) -> str:
    """The first sentence: what the numbers did."""
    numbers = dict(cls=class_text(o.target), delta=points(o.delta), before=widgets.percent(o.before_prob),
                   after=widgets.percent(o.after_prob))
    if o.after_top == o.target:
        return _("The prediction stayed “{cls}” and its probability moved by {delta} points ({before} → {after}).").format(
            **numbers)
    return _("The prediction changed from “{cls}” to “{new}”: the probability of “{cls}” moved by {delta} points "
             "({before} → {after}).").format(new=class_text(o.after_top), **numbers)


def said(logits: np.ndarray) -> str:
    """What the model answers, with its "I don't know" rule: '“3” (97.1%)' or 'not recognised (…)'."""
    pred = prediction_from_logits(torch.from_numpy(logits), NAMES, model.meta.get("known_rule"))
    top = int(np.argmax(logits))
    if pred.known:
        return _("“{cls}” ({p})").format(cls=class_text(top), p=widgets.percent(pred.probs[0]))
    guess = NAMES.index(pred.guess)
    return _("not recognised (forced to choose: “{cls}”, {p})").format(cls=class_text(guess), p=widgets.percent(pred.guess_prob))


# --- the page ------------------------------------------------------------------------------------------------

st.title(_("6. What if…?"))
widgets.explain(
    _("You have seen every stage. Now change one and watch what happens: **hide patches**, **switch off attention "
      "heads**, **remove the position embeddings** or **shuffle the patches**. Before each result, make a guess. "
      "The page compares the model *before* and *after* your change, on the same image, and measures how much the "
      "probability of the class that won before moves:"),
    r"\Delta p = p_{\text{after}}(c) - p_{\text{before}}(c)")
if not HAS_HEAD:
    st.info(_("This model has **no classification head**, so it makes no prediction: the parts about the prediction "
              "(guesses, probabilities, explanations of a class) are not available. The attention maps still show "
              "what each change does."))
elif model.meta.get("untrained"):
    st.warning(_("This model is untrained: its predictions are close to a guess, and so are the effects of your "
                 "changes. Compare with the trained model."))


@widgets.fragment  # st.fragment, in the page's language
def intervene() -> None:
    """Everything that depends on the change; reruns alone when a patch, a head or a preset is chosen.

    From the top: the presets, what is changed and the question (or the answer), then the controls by
    hand (patches, heads, position embeddings, shuffle), then the figures before and after."""
    take_clicks()
    st.subheader(_("Try a change"))
    buttons = [
        ("shuffle-no-positions", _("Shuffle, without position embeddings"), None),
        ("shuffle", _("Shuffle, with position embeddings"), None),
        ("ink", _("Hide the ink"), _("Hide every patch whose colour differs clearly from the image's background (its "
                                     "median colour).")),
        ("not-ink", _("Hide all but the ink"), None),
        ("top-head", _("Switch off the most important head"),
         _("The head whose removal lowers the probability of the predicted class most, each head measured alone.")),
        ("random-head", _("Switch off a random head"), None),
    ]
    with st.container(horizontal=True, gap="small"):
        for name, label, help_text in buttons:
            st.button(label, key=f"wi_preset_{name}", on_click=preset, args=(name,), help=help_text,
                      disabled=(name == "top-head" and not HAS_HEAD) or (name.startswith("shuffle") and N < 2))
        st.button(_("Reset"), key="wi_reset", on_click=_defaults, icon=":material/restart_alt:")
    guessing = st.toggle(_("Guess before I see the result"), value=True, key="wi_guessing", disabled=not HAS_HEAD)

    if ss.get("wi_preset") in ("ink", "not-ink") and ss.get("wi_ink_count") in (0, N):
        st.warning(_("No patch of this image differs clearly from its background colour, so by this page's rule it has "
                     "no ink.") if ss["wi_ink_count"] == 0 else
                   _("Every patch of this image differs clearly from its background colour, so by this page's rule it is "
                     "all ink."))
    before, after = interventions()
    kind = whatif.change_kind(before, after)
    b = a = None
    revealed = False
    if kind == "none":
        st.info(_("Nothing is changed yet: press a button above, or change patches, heads or the position embeddings "
                  "below."))
    else:
        st.info(_("Your change: {change}.").format(change=change_words()))
        with st.spinner(_("Running the model with your change…")):
            b, a = result(before), result(after)
        pair = repr((before, after))
        if HAS_HEAD and guessing and ss.get("wi_revealed") != pair:
            st.markdown(f"**{question(kind)}**")
            with st.container(horizontal=True, gap="small"):
                for g, label in GUESSES.items():
                    st.button(_(label), key=f"wi_guess_{g}", on_click=_guess, args=(pair, g), type="primary")
            st.caption(_("The result appears after your guess."))
        else:
            revealed = True
            if HAS_HEAD:
                summary(b, a, kind, pair if guessing else None)

    st.markdown(_("**Or change it by hand:**"))
    controls()
    if revealed:
        figures(b, a)


def controls() -> None:
    """The patch grid, the heads, the position embeddings and the shuffle."""
    left, right = widgets.columns(2)
    with left:
        widgets.plot(plots.hide_grid_figure(image, cfg.patch_size, ss["wi_hide"]), key=ss["wi_grid_key"],
                     name=widgets.figure_name("whatif", figure="hidden"), on_select="rerun", selection_mode="points")
        st.selectbox(_("Hide or show a patch by its number"), list(range(1, N + 1)), index=None, key="wi_patch_pick",
                     on_change=_from_patch_pick, placeholder=_("a patch number"))
        st.caption(_("A hidden patch is covered with the training images' average colour (zero after normalisation)."))
        ss["wi_positions_pick"] = ss["wi_positions"]
        st.radio(_("Position embeddings"), list(POSITIONS), format_func=lambda k: _(POSITIONS[k]), key="wi_positions_pick",
                 on_change=_from_positions, horizontal=True)
        with st.container(horizontal=True, gap="small"):
            if ss["wi_shuffle"] is None:
                st.button(_("Shuffle the patches"), key="wi_shuffle_on", on_click=_shuffle, args=(True,),
                          icon=":material/shuffle:", disabled=N < 2)
            else:
                st.button(_("Shuffle again"), key="wi_shuffle_again", on_click=_shuffle, args=(True,),
                          icon=":material/shuffle:")
                st.button(_("Put them back"), key="wi_shuffle_off", on_click=_shuffle, args=(False,), icon=":material/undo:")
    with right:
        before, _after = interventions()
        effects = head_effects(before) if HAS_HEAD and CHEAP_HEADS else None
        top = class_text(effects.target) if effects is not None else ""
        widgets.plot(plots.heads_figure(L, H, ss["wi_heads"], drops=effects.drops if effects is not None else None,
                                        target_name=top),
                     key=ss["wi_heads_key"], name=widgets.figure_name("whatif", figure="heads"),
                     on_select="rerun", selection_mode="points")
        st.selectbox(_("Switch a head off or on"), list(range(L * H)), index=None, key="wi_head_pick",
                     format_func=lambda i: head_name(*divmod(i, H)), on_change=_from_head_pick, placeholder=_("a head"))
        if effects is not None:
            st.caption(_("Colours: how many points the probability of “{cls}” drops when that head alone is switched off "
                         "(its output set to zero), starting from the model before your change.").format(cls=top))


def summary(b: dict, a: dict, kind: str, pair: str | None) -> None:
    """The answer in two sentences from the numbers, the guess's verdict, and the class's probability before and after."""
    o = whatif.outcome(b["probs"], a["probs"])
    truth = {"same": "same", "changed": "changed"}.get(o.verdict, "confidence")
    message = what_happened(o) + " " + why(kind, o.verdict, class_text(o.target))
    right = False
    if pair is not None and ss.get("wi_revealed") == pair:
        guess = ss.get("wi_guess")
        right = guess == truth
        feedback = (_("Your guess was right.") if right else
                    _("You guessed “{guess}”; the numbers say “{truth}”.").format(guess=_(GUESSES[guess]),
                                                                                   truth=_(GUESSES[truth])))
        message = f"**{feedback}** {message}"
    (st.success if right else st.info)(message)
    m1, m2 = widgets.columns(2)
    cls = class_text(o.target)
    m1.metric(_("Before: p(“{cls}”)").format(cls=cls), widgets.percent(o.before_prob))
    m1.caption(_("The model says {answer}.").format(answer=said(b["logits"])))
    moved = o.verdict != "same"
    m2.metric(_("After: p(“{cls}”)").format(cls=cls), widgets.percent(o.after_prob),
              _("{delta} points").format(delta=points(o.delta).replace("−", "-")),  # Streamlit reads an ASCII minus
              delta_color="normal" if moved else "off", delta_arrow="auto" if moved else "off")
    m2.caption(_("The model says {answer}.").format(answer=said(a["logits"])))


def figures(b: dict, a: dict) -> None:
    """Before and after: the prediction, what the model gets, the [class] attention and the rollout."""
    st.subheader(_("Before and after"))
    left, right = widgets.columns(2)
    if HAS_HEAD:
        with left:
            shown = [class_text(i) for i in range(len(NAMES))]
            widgets.plot(plots.before_after_bars_figure(b["probs"], a["probs"], shown, k=min(5, len(NAMES))),
                         key="wi_bars", name=widgets.figure_name("whatif", figure="prediction"))
    with right if HAS_HEAD else left:
        widgets.plot(plots.image_figure(a["seen"], _("What the model gets after the change")), key="wi_seen",
                     name=widgets.figure_name("whatif", figure="input-after"))
    labels = [_("before"), _("after")]
    widgets.plot(plots.side_by_side_maps_figure(
        [b["attention"], a["attention"]], labels, image, title=_("[class] attention, last layer"),
        colorbar_title=_("attention weight"), percent=True, zmin=0, width=560),
        key="wi_attention", name=widgets.figure_name("whatif", figure="attention"))
    widgets.plot(plots.side_by_side_maps_figure(
        [b["rollout"], a["rollout"]], labels, image, title=_("Attention rollout"),
        colorbar_title=_("rollout weight"), percent=True, zmin=0, width=560),
        key="wi_rollout", name=widgets.figure_name("whatif", figure="rollout"))
    st.caption(_("In each figure, before and after share one colour scale. Each patch's value is drawn where its "
                 "content came from (after a shuffle too); a head that is switched off is left out (its attention is "
                 "computed but not used)."))


intervene()


# --- explanations ---------------------------------------------------------------------------------------------

def explanations() -> None:
    """The four maps for one class on one scale, then the two checks: deletion/insertion and the sanity check."""
    st.markdown(_("Four ways to say which patches mattered. **None of these maps is the ground truth**: each measures "
                  "something different, and they can disagree."))
    st.markdown("\n".join("- " + item for item in (
        _("**Raw attention**: where the [class] token looks in the last layer, averaged over heads. The same for every "
          "class: it says where the model looked, not what it concluded."),
        _("**Attention rollout**: attention followed through every layer, with the residual connections. Also the same "
          "for every class."),
        _("**Gradient method** (Chefer et al. 2021): attention weighted by how much it raises this class's score. "
          "It depends on the class."),
        _("**Occlusion**: hide each patch alone and measure how much this class's probability drops. It asks the "
          "model directly, one patch at a time."),
    )))
    probs = trace["probs"]
    ss.setdefault("wi_target", int(np.argmax(probs)))
    if not 0 <= ss["wi_target"] < len(NAMES):
        ss["wi_target"] = int(np.argmax(probs))
    target = st.selectbox(_("Class to explain"), list(range(len(NAMES))), key="wi_target",
                          format_func=lambda i: f"{class_text(i)} ({widgets.percent(probs[i])})")
    with st.spinner(_("Computing the explanations…")):
        ex = cached("explain", target, lambda: _explain_shared(choice.key, picture.hash, fit, target, model, X),
                    lambda: whatif.explanations(model, X, target))
    methods = list(ex["maps"])
    shared = [ex["maps"][m] / max(float(np.nanmax(np.abs(ex["maps"][m]))), 1e-12) for m in methods]
    widgets.plot(plots.side_by_side_maps_figure(
        shared, [_(METHOD_NAMES[m]) for m in methods], image, title=_("Which patches mattered for “{cls}”?").format(
            cls=class_text(target)),
        colorbar_title=_("importance"), zmin=-1, zmax=1, colorscale=plots.DIVERGING,
        per_row=2, width=560),
        key="wi_explain", name=widgets.figure_name("whatif", figure="explanations", target=target))
    st.caption(_("Importance: each map divided by its own largest value, so all four share one scale from −1 to 1 "
                 "(1 is the map's strongest patch); only occlusion can be negative (a patch that spoke against the "
                 "class)."))

    st.markdown(_("**Check 1: deletion and insertion.** Hide the patches a map ranks highest first: if the map found "
                  "what matters, the probability falls fast (a small area under the curve). Or start from a hidden image "
                  "and reveal them first: it rises fast (a large area). A random order is the bar every map must beat."))
    labels = {m: _(METHOD_NAMES[m]) for m in ex["deletion"]}
    d1, d2 = widgets.columns(2)
    with d1:
        widgets.plot(plots.curves_figure(ex["fractions"], {labels[m]: v for m, v in ex["deletion"].items()},
                                         {labels[m]: v for m, v in ex["deletion_auc"].items()}, "deletion", class_text(target)),
                     key="wi_deletion", name=widgets.figure_name("whatif", figure="deletion", target=target))
    with d2:
        widgets.plot(plots.curves_figure(ex["fractions"], {labels[m]: v for m, v in ex["insertion"].items()},
                                         {labels[m]: v for m, v in ex["insertion_auc"].items()}, "insertion", class_text(target)),
                     key="wi_insertion", name=widgets.figure_name("whatif", figure="insertion", target=target))
    best_d = min(methods, key=lambda m: ex["deletion_auc"][m])
    best_i = max(methods, key=lambda m: ex["insertion_auc"][m])
    beat = [labels[m] for m in methods if ex["deletion_auc"][m] < ex["deletion_auc"]["random"]
            and ex["insertion_auc"][m] > ex["insertion_auc"]["random"]]
    st.markdown(_("On this image, **{deletion}** has the smallest deletion area ({d}) and **{insertion}** the largest "
                  "insertion area ({i}); a random order gives {rd} and {ri}.").format(
        deletion=labels[best_d], d=f"{ex['deletion_auc'][best_d]:.2f}", insertion=labels[best_i],
        i=f"{ex['insertion_auc'][best_i]:.2f}", rd=f"{ex['deletion_auc']['random']:.2f}",
        ri=f"{ex['insertion_auc']['random']:.2f}") + " " + (
        _("Maps that beat the random order on both: {maps}.").format(maps=", ".join(beat)) if beat else
        _("No map beats the random order on both curves for this image.")))

    st.markdown(_("**Check 2: the sanity check** (Adebayo et al. 2018). Replace the model's weights with random ones, "
                  "layer by layer from the top, and watch each map. A map that explains the *model* must change; a map "
                  "that stays the same on random weights explains the *image*, not the model."))
    sanity_key = (choice.key, picture.hash, fit, target)
    if st.button(_("Run the sanity check"), key="wi_sanity", icon=":material/science:"):
        ss["wi_sanity_for"] = sanity_key
    if ss.get("wi_sanity_for") == sanity_key:
        with st.spinner(_("Randomising the weights, layer by layer…")):
            sc = cached("sanity", target, lambda: _sanity_shared(choice.key, picture.hash, fit, target, model, X),
                        lambda: whatif.sanity(model, X, target))
        names = [_(METHOD_NAMES[m]) for m in sc["similarity"]]
        verdicts = whatif.sanity_summary(sc["stages"], sc["similarity"])
        widgets.plot(plots.sanity_check_figure(sc["stages"], dict(zip(names, sc["similarity"].values()))),
                     key="wi_sanity_plot", name=widgets.figure_name("whatif", figure="sanity", target=target))
        sanity_words(verdicts)
        stacked = np.stack([sc["maps"][m] for m in sc["similarity"]])  # (methods, stages, gh, gw)
        stage_names = [plots.stage_label(s) for s in sc["stages"]]
        widgets.plot(plots.maps_grid_figure(stacked, names, stage_names, title=_("The maps as the weights are randomised"),
                                            shared_scale=False, width=650),
                     key="wi_sanity_maps", name=widgets.figure_name("whatif", figure="sanity-maps", target=target))


def sanity_words(verdicts: dict) -> None:
    """Which maps changed on random weights and which did not, from the rank correlations."""
    stays = [_(METHOD_NAMES[m]) for m, v in verdicts.items() if v["verdict"] == "stays"]
    changes = [_(METHOD_NAMES[m]) for m, v in verdicts.items() if v["verdict"] == "changes"]
    untouched = [_(METHOD_NAMES[m]) for m, v in verdicts.items() if v["after_head"] > 0.99]
    lines = []
    if changes:
        lines.append(_("Changed when the weights became random (rank correlation below {t}): {maps}.").format(
            t=whatif.STAYS, maps=", ".join(changes)))
    if stays:
        lines.append(_("Stayed similar on random weights: {maps}. These say more about the image than about what the "
                       "model learned.").format(maps=", ".join(stays)))
    if untouched:
        lines.append(_("Unchanged when only the classification head was randomised: {maps}. They do not depend on the "
                       "head, so they cannot tell one class from another.").format(maps=", ".join(untouched)))
    st.markdown("\n".join("- " + line for line in lines))


st.subheader(_("Explanations side by side, and how much to trust each"))
if HAS_HEAD:
    explanations()
else:
    st.info(_("These explanations are of a class, so they need a classification head; this model has none."))
