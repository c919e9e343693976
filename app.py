"""ViT Explorer: run with ``streamlit run app.py``. The pages are in ``app_pages/``, the frame in ``ui/``."""

from ui import frame

frame.run()
