"""The Streamlit layer of ViT Explorer, split by concern. Pages import from here; ``vit/`` never does.

- :mod:`ui.i18n`: the language (URL, sidebar switch, browser) and the words in it;
- :mod:`ui.models`: process-wide setup and the models shared by every session;
- :mod:`ui.state`: this session's choice of image, model and fit;
- :mod:`ui.compute`: the model run on the image (the trace), cached;
- :mod:`ui.widgets`: small pieces every page uses (figures, equations, links that open a view);
- :mod:`ui.frame`: navigation, the sidebar, projector mode and the guided path between stages.

Imports only go down this list, never up, so there is no cycle.
"""
