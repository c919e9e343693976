"""ViT Explorer: run with ``streamlit run app.py``. The pages are in ``pages/``, the frame in ``ui/``."""

from ui import frame

frame.run()
