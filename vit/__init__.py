"""ViT Explorer's library: a from-scratch Vision Transformer, its trace, weights, data and analyses.

Nothing in this package imports streamlit; it works from a notebook or the command line too.
"""

from .config import PRESETS, ViTConfig
from .decoding import decode_upload
from .device import choose_device, describe_device
from .images import ImageError, load_image, load_image_info
from .intervention import Intervention
from .loading import available_models, denormalize, fit_image, load_model, preprocess, untrained_like
from .model import Trace, VisionTransformer, interpolate_position_embeddings
from .predict import Prediction, predict
from .snapshots import Snapshot, training_snapshots
from .weights import CheckpointError, from_hf, load_checkpoint, load_hf_directory, save_model
from . import explain  # noqa: E402  (after the model it explains)
from .explain import (Curves, SanityCheck, attention_map, deletion_insertion, explanation_map, gradient_map,
                      occlusion_map, rollout_map, sanity_check)

__all__ = [
    "PRESETS", "ViTConfig", "decode_upload", "choose_device", "describe_device", "ImageError", "load_image", "load_image_info", "available_models", "denormalize",
    "fit_image", "load_model", "preprocess", "untrained_like", "Trace", "VisionTransformer",
    "interpolate_position_embeddings", "CheckpointError", "from_hf", "load_checkpoint",
    "load_hf_directory", "save_model", "Prediction", "predict", "Intervention", "explain", "Curves", "SanityCheck",
    "attention_map", "rollout_map", "gradient_map", "occlusion_map", "explanation_map", "deletion_insertion",
    "sanity_check", "Snapshot", "training_snapshots",
]
