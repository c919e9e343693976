"""ViT Explorer: entry point. The walk-through pages are being built."""

import streamlit as st

st.set_page_config(page_title="ViT Explorer", layout="wide")
st.title("ViT Explorer")
st.write("An interactive walk through every stage of a Vision Transformer.")
