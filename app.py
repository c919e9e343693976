"""ViT Explorer: the entry point and the frame around every page. Run with ``streamlit run app.py``."""

from __future__ import annotations

import streamlit as st

from pages import common

def start_page() -> None:
    st.title("ViT Explorer")
    st.markdown(
        "A Vision Transformer reads an image the way a language model reads a sentence: it cuts the "
        "image into small square **patches**, turns each into a vector (a *token*), and lets every token "
        "look at every other one through **self-attention**. Bring an image and follow it through every "
        "stage of *An Image is Worth 16×16 Words* (Dosovitskiy et al., 2020).")

    left, right = st.columns([3, 2], gap="large")
    with left:
        st.subheader("1. Choose an image")
        _camera_invitation(common.current_model().model)
        tab_samples, tab_upload, tab_camera = st.tabs(["Samples", "Upload", "Camera"])
        with tab_samples:
            _sample_gallery()
        with tab_upload:
            upload = st.file_uploader(
                "PNG, JPEG, WebP, GIF, BMP, TIFF or HEIC", key="upload",
                type=["png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif"])
            _take_file(upload, "upload")
        with tab_camera:
            shot = st.camera_input("Take a photo", key="camera")
            _take_file(shot, "camera")
        # Widget state is dropped on pages without the widget, so the choice lives in a plain key.
        # Until the user chooses, the fit follows the model (what it was trained with).
        st.session_state["fit"] = common.current_fit()
        st.radio("Images that are not square:", list(common.FITS), format_func=common.FITS.get,
                 key="fit", horizontal=True, on_change=_keep, args=("fit", "fit_selected"),
                 help="Until you choose, this follows the model: the way its training images were made square.")

    with right:
        st.subheader("2. Choose a model")
        options = common.model_options()
        st.session_state.setdefault("model_name", common.current_model_name())
        st.selectbox("Model", options, key="model_name", on_change=_keep, args=("model_name", "model_selected"),
                     help="The bundled models were trained by this project. An untrained twin has the same "
                          "architecture with random weights: compare them to see what learning adds.")
        if st.session_state["model_name"] == common.LOCAL:
            path = st.text_input("Checkpoint on this server (a folder, or a .safetensors file with its .json)",
                                 key="local_path", placeholder="/path/to/vit-b16")
            if st.button("Load", key="load_local"):
                error = common.load_user_model(path)
                if error:
                    st.error(error)
            if "user_model" not in st.session_state:
                st.info("Until a checkpoint is loaded, the default bundled model is used.")
        choice = common.current_model()
        _model_card(choice)

    image = common.current_image()
    with left:
        st.markdown(f"**Your image:** {image.label} · {image.image.width}×{image.image.height} px")
        st.image(image.image, width=220)
        for note in image.notes:
            st.info(note)
    trace = common.current_trace()
    st.subheader("3. Follow the image through the model")
    _pipeline(trace, choice.model)


def _camera_invitation(model) -> None:
    """For a model that reads drawings: ask the student to draw one and show it to the camera."""
    if model.meta.get("dataset") != "symbols":
        return
    fit = ("The whole photo is padded to a square, so the drawing is not cut off." if common.current_fit() == "pad"
           else "Choose *Pad to a square* below, so the drawing is not cut off.")
    st.info(f"**Show it a drawing.** This model was trained on {common.trained_on(model)}. Draw a digit "
            "(0–9) or an arrow (↑ ↓ ← →) on paper with a thick pen, open the **Camera** tab below, hold the "
            f"paper up to the camera and take the photo, then follow it through the model below. {fit}",
            icon=":material/draw:")


def _keep(widget_key: str, state_key: str) -> None:
    """Copy a widget's value to a plain key: Streamlit drops widget state on pages without the widget."""
    st.session_state[state_key] = st.session_state[widget_key]


def _take_file(file, source: str) -> None:
    """Decode a new upload or camera shot once; a bad file shows an error and keeps the old image."""
    if file is None:
        return
    marker = (source, file.file_id)
    if st.session_state.get(f"taken_{source}") == marker:
        if st.session_state.get(f"error_{source}"):
            st.error(st.session_state[f"error_{source}"])
        return
    st.session_state[f"taken_{source}"] = marker
    error = common.set_image_from_bytes(file.getvalue(), f"{source}: {file.name}")
    st.session_state[f"error_{source}"] = error
    if error:
        st.error(error)


def _sample_gallery() -> None:
    files = common.sample_files()
    if not files:
        st.info("No sample images are installed; upload one instead.")
        return
    chosen = st.session_state.get("sample_name")
    for group, members in common.sample_groups(files).items():
        st.caption(group)
        cols = st.columns(5)
        for i, path in enumerate(members):
            with cols[i % 5]:
                st.image(common.sample_thumbnail(str(path)), width="stretch")
                label = common.sample_label(path)
                if st.button(label, key=f"sample_{path.stem}", width="stretch",
                             type="primary" if path.name == chosen else "secondary"):
                    common.set_sample(path)
                    st.query_params["sample"] = path.name
                    st.rerun()


def _model_card(choice: common.ModelChoice) -> None:
    model, cfg = choice.model, choice.model.config
    meta = model.meta
    lines = [f"**{choice.label}** · {model.num_parameters():,} parameters",
             f"{cfg.image_size}×{cfg.image_size} px, {cfg.in_channels} channel(s), patches of {cfg.patch_size}×{cfg.patch_size}, "
             f"D = {cfg.dim}, {cfg.depth} blocks × {cfg.heads} heads, MLP {cfg.mlp_dim}"]
    if meta.get("untrained"):
        lines.append("Random weights: nothing has been learned yet.")
    elif meta.get("test_accuracy") is not None:
        lines.append(f"Trained on {meta.get('dataset')}: {meta['test_accuracy']:.1%} test accuracy")
    if model.class_names:
        lines.append("Classes: " + ", ".join(model.class_names))
    st.markdown("  \n".join(lines))
    st.caption(f"Runs on {common.vit.describe_device(next(model.parameters()).device)}")


def _pipeline(trace, model) -> None:
    cfg = model.config
    n, values = trace["patches"].shape
    tokens, dim = trace["hidden_states"].shape[-2:]
    steps = [
        ("patches", f"{cfg.image_size}×{cfg.image_size}×{cfg.in_channels} image → {n} patches × {values} values"),
        ("embeddings", f"linear projection E → {n} × {dim}, plus the [class] token → {tokens} × {dim}"),
        ("positions", f"add position embeddings: {tokens} × {dim}"),
        ("attention", f"{cfg.depth} blocks × {cfg.heads} heads of self-attention, {tokens}×{tokens} each"),
        ("encoder", f"MLP, residuals, final LayerNorm → head on [class] → {cfg.num_classes or 'no'} classes"),
    ]
    cols = st.columns(len(steps))
    for col, (key, text) in zip(cols, steps):
        path, title, icon = common.PAGES[key]
        with col, st.container(border=True):
            st.page_link(path, label=title.split(" ", 1)[0] + " " + common.SHORT_TITLES[key], icon=icon)
            st.caption(text)


if __name__ == "__main__":  # run by `streamlit run app.py`; page files import start_page from here
    common.run_frame(start_page)
