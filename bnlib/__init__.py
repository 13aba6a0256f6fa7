"""bnlib: an executable reproduction of Frankle, Schwab & Morcos, "Training BatchNorm and Only
BatchNorm: On the Expressive Power of Random Features in CNNs".

The three files a reader needs: :mod:`bnlib.models` (the networks), :mod:`bnlib.train` (the
trainer) and :mod:`bnlib.results` (the results store). Each other concept has one module, and
imports only point down this list:

* :mod:`bnlib.errors`, :mod:`bnlib.layers` (layers that fuse runs and declare parameter roles),
  :mod:`bnlib.architectures` (the registry of network families);
* :mod:`bnlib.config` (typed run configs), :mod:`bnlib.init` (init registries),
  :mod:`bnlib.models`, :mod:`bnlib.freezing` (training modes), :mod:`bnlib.data`;
* :mod:`bnlib.results` (the store and the run address), :mod:`bnlib.train`, :mod:`bnlib.sweep`;
* :mod:`bnlib.experiments` (what each figure needs), :mod:`bnlib.plan` (finding and training a
  chapter's runs), :mod:`bnlib.analysis`, :mod:`bnlib.figures`, :mod:`bnlib.claims`, :mod:`bnlib.book`.
"""

from .config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig

__all__ = ["ConfigError", "DataConfig", "ModelConfig", "RunConfig", "TrainConfig"]
__version__ = "0.1.0"
