"""bnlib: an executable reproduction of Frankle, Schwab & Morcos, "Training BatchNorm and Only
BatchNorm: On the Expressive Power of Random Features in CNNs".

The three files a reader needs: :mod:`bnlib.models` (the networks), :mod:`bnlib.train` (the
trainer) and :mod:`bnlib.results` (the results store). Modes live in :mod:`bnlib.freezing`,
initialisations in :mod:`bnlib.init`, data in :mod:`bnlib.data`, configs in :mod:`bnlib.config`.
"""

from .config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig

__all__ = ["ConfigError", "DataConfig", "ModelConfig", "RunConfig", "TrainConfig"]
__version__ = "0.1.0"
