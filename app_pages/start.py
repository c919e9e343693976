"""The start page: choose an image and a model, then follow the image through the model."""

import streamlit as st

from ui import frame, state
from ui.compute import current_trace
from ui.i18n import _, md_escape, ngettext
from ui.models import UPLOAD_LIMIT_MB, UPLOADED, dataset_name, option_label, trained_on
from ui.state import FITS, class_label
from ui.widgets import columns, device_text, display_image, percent


def _keep(widget_key: str, state_key: str) -> None:
    """Copy a widget's value to a plain key: Streamlit drops widget state on pages without the widget."""
    st.session_state[state_key] = st.session_state[widget_key]


def draws(model) -> bool:
    return model.meta.get("dataset") == "symbols"


def where_to_begin(model) -> None:
    """The first step: for a model that reads drawings, an invitation to draw one and show it to the camera."""
    if draws(model):
        st.markdown(_("**Where to begin:** draw a digit (0–9) or an arrow (↑ ↓ ← →) on paper with a thick pen and "
                      "photograph it in the **Camera** tab below (or pick a sample), then open **1. Patches** below "
                      "and follow the links at the end of each page."))
    else:
        st.markdown(_("**Where to begin:** pick a sample (or take a photo), check the model under *2. Choose a "
                      "model*, then open **1. Patches** below and follow the links at the end of each page."))


def camera_hint(model) -> None:
    """In the Camera tab of a model that reads drawings: what it knows, and that the drawing is not cut off."""
    if not draws(model):
        return
    fit = (_("The whole photo is padded to a square, so the drawing is not cut off.") if state.current_fit() == "pad"
           else _("Choose *Pad to a square* below, so the drawing is not cut off."))
    st.caption(_("This model was trained on {data}. Hold the paper up to the camera, fill most of the picture with "
                 "it, and take the photo.").format(data=trained_on(model)) + " " + fit)


def take_checkpoint(files) -> None:
    """Load an uploaded checkpoint once per set of files; a bad one shows an error and keeps the old model."""
    files = list(files or [])
    if not files:
        return
    if len(files) == 1:
        st.info(_("Now add the other file: a checkpoint is a .safetensors file and a .json file with the same name."))
        return
    marker = tuple(sorted(f.file_id for f in files))
    if st.session_state.get("taken_checkpoint") != marker:
        st.session_state["taken_checkpoint"] = marker
        try:
            error = state.load_uploaded_model([(f.name, f.getvalue()) for f in files])
        except Exception:  # noqa: BLE001 - never a traceback for a student's file (vit lets only CheckpointError out)
            error = _("This checkpoint could not be loaded.")
        st.session_state["error_checkpoint"] = error
    if st.session_state.get("error_checkpoint"):
        st.error(st.session_state["error_checkpoint"])


def _pick_sample(key: str) -> None:
    name = st.session_state.get(key)
    path = next((p for p in state.sample_files() if p.name == name), None)
    if path is not None:
        state.set_sample(path)
        st.query_params["sample"] = path.name


def sample_gallery() -> None:
    """Compact: per group a strip of thumbnails and one row of buttons (pills); the chosen one is marked."""
    files = state.sample_files()
    if not files:
        st.info(_("No sample images are installed; upload one instead."))
        return
    chosen = st.session_state.get("sample_name")
    for i, (group, members) in enumerate(state.sample_groups(files).items()):
        key = f"samples_{i}"
        names = [p.name for p in members]
        st.session_state[key] = chosen if chosen in names else None
        st.caption(_(group))
        st.image([state.sample_thumbnail(str(p)) for p in members], width=56)
        st.pills(_(group), names, key=key, on_change=_pick_sample, args=(key,), label_visibility="collapsed",
                 format_func=lambda n, m={p.name: p for p in members}: state.sample_label(m[n]))


def model_card(choice: state.ModelChoice) -> None:
    model, cfg = choice.model, choice.model.config
    meta = model.meta
    lines = [_("**{name}** · {count} parameters").format(name=choice.label, count=f"{model.num_parameters():,}"),
             _("{size}×{size} px, {c} channel(s), patches of {p}×{p}, D = {d}, {layers} blocks × {heads} heads, "
               "MLP {mlp}").format(size=cfg.image_size, c=cfg.in_channels, p=cfg.patch_size, d=cfg.dim,
                                   layers=cfg.depth, heads=cfg.heads, mlp=cfg.mlp_dim)]
    if meta.get("untrained"):
        lines.append(_("Random weights: nothing has been learned yet."))
    elif meta.get("test_accuracy") is not None:
        lines.append(_("Trained on {data}: {acc} test accuracy").format(
            data=dataset_name(model), acc=percent(meta["test_accuracy"])))
    if model.class_names:
        lines.append(_("Classes: {names}").format(names=", ".join(md_escape(class_label(n)) for n in model.class_names)))
    st.markdown("  \n".join(lines))
    st.caption(_("Runs on {device}").format(device=device_text(model)))


def pipeline(trace, model) -> None:
    cfg = model.config
    n, values = trace["patches"].shape
    tokens, dim = trace["hidden_states"].shape[-2:]
    steps = {
        "patches": _("{size}×{size}×{c} image → {n} patches × {v} values").format(
            size=cfg.image_size, c=cfg.in_channels, n=n, v=values),
        "embeddings": _("linear projection E → {n} × {d}, plus the [class] token → {t} × {d}").format(n=n, d=dim, t=tokens),
        "positions": _("add position embeddings: {t} × {d}").format(t=tokens, d=dim),
        "attention": _("{layers} blocks × {heads} heads of self-attention, {t}×{t} each").format(
            layers=cfg.depth, heads=cfg.heads, t=tokens),
        "encoder": (ngettext("MLP, residuals, final LayerNorm → head on [class] → {n} class",
                             "MLP, residuals, final LayerNorm → head on [class] → {n} classes", cfg.num_classes)
                    .format(n=cfg.num_classes) if cfg.num_classes else _("MLP, residuals, final LayerNorm (no head)")),
        "whatif": _("hide patches, switch heads off, shuffle: guess, then see what changes"),
    }
    by_key = frame.pages()
    with st.container(horizontal=True, gap="small"):
        for key, text in steps.items():
            with st.container(border=True, width=190):
                st.page_link(by_key[key], label=_(frame.STAGES[key][1]), icon=frame.STAGES[key][3],
                             query_params=frame.keep_params())
                st.caption(text)


st.title("ViT Explorer")
st.markdown(_(
    "A Vision Transformer reads an image the way a language model reads a sentence: it cuts the image into "
    "small square **patches**, turns each into a vector (a *token*), and lets every token look at every other "
    "one through **self-attention**. Bring an image and follow it through every stage of *An Image is Worth "
    "16×16 Words* (Dosovitskiy et al., 2020)."))
where_to_begin(state.current_model().model)

state.current_image()  # the default sample is chosen before the gallery, so the gallery can mark it
left, right = columns([3, 2], gap="large")
with left:
    st.subheader(_("1. Choose an image"))
    tab_samples, tab_upload, tab_camera = st.tabs([_("Samples"), _("Upload"), _("Camera")])
    with tab_samples:
        sample_gallery()
    with tab_upload:
        upload = st.file_uploader(_("PNG, JPEG, WebP, GIF, BMP, TIFF, ICO or HEIC"), key="upload",
                                  type=["png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff", "ico", "heic", "heif"])
        state.take_file(upload, "upload")
        st.caption(_("Your image and choices live only in this browser tab: reloading the page starts a new "
                     "session, with the default image and model."))
    with tab_camera:
        camera_hint(state.current_model().model)
        shot = st.camera_input(_("Take a photo"), key="camera")
        state.take_file(shot, "camera")
    # Until the user chooses, the fit follows the model (what it was trained with).
    st.session_state["fit"] = state.current_fit()
    st.radio(_("Images that are not square:"), list(FITS), format_func=lambda k: _(FITS[k]),
             key="fit", horizontal=True, on_change=_keep, args=("fit", "fit_selected"),
             help=_("Until you choose, this follows the model: the way its training images were made square."))

with right:
    st.subheader(_("2. Choose a model"))
    options = state.model_options()
    if st.session_state.get("model_name") not in options:  # first visit, or its choice is no longer offered
        st.session_state["model_name"] = state.current_model_name()
    st.selectbox(_("Model"), options, key="model_name", on_change=_keep, args=("model_name", "model_selected"),
                 format_func=option_label,
                 help=_("The bundled models were trained by this project. An untrained twin has the same "
                        "architecture with random weights: compare them to see what learning adds."))
    if st.session_state["model_name"] == UPLOADED:
        take_checkpoint(st.file_uploader(
            _("Your checkpoint: its .safetensors file and its .json file (at most {limit} MB)").format(
                limit=UPLOAD_LIMIT_MB),
            type=["safetensors", "json"], accept_multiple_files=True, key="checkpoint_upload",
            max_upload_size=UPLOAD_LIMIT_MB))
        if "user_model" not in st.session_state:
            st.info(_("Until a checkpoint is uploaded, the default model is used."))
        st.caption(_("Your checkpoint stays in this browser tab: it is not saved on the server, and nobody else "
                     "can choose it."))
    if st.session_state.pop("model_unavailable", False):
        st.warning(_("This model could not be loaded, so the default model is used instead. Your teacher can "
                     "find the reason in the server log."))
    choice = state.current_model()
    model_card(choice)

image = state.current_image()
with left:
    st.markdown(_("**Your image:** {label} · {w}×{h} px").format(
        label=state.image_label(image), w=image.image.width, h=image.image.height))
    st.image(display_image(image.image), width=160)
    for note in state.image_notes(image) + state.fit_notes(image, choice.model):
        st.info(note)
trace = current_trace()
st.subheader(_("3. Follow the image through the model"))
pipeline(trace, choice.model)
