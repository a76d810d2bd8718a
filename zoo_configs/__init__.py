"""Hyperparameters in rl-zoo3's YAML layout, shipped with rainbow_ext as ``rainbow_ext.zoo_configs``
(read through :mod:`importlib.resources`; see :mod:`rainbow_ext.zoo.config`)."""
