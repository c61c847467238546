"""density_nb: computation density (s-Trace) of transformer language models."""

from density_nb.models import BUILTIN_MODELS, DEFAULT_MODEL, ModelError, load_model

__all__ = ["BUILTIN_MODELS", "DEFAULT_MODEL", "ModelError", "load_model"]
__version__ = "0.1.0"
