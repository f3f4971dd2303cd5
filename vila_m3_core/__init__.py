"""vila-m3: the VILA-M3 medical vision-language model, its expert agent, data, evaluation and bundles."""

from vila_m3_core.errors import VilaM3Error

__version__ = "0.1.0"

__all__ = ["VilaM3Error", "__version__"]
