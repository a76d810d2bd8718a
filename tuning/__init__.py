"""Search spaces of ``python -m rainbow_ext.tune``, shipped with rainbow_ext as ``rainbow_ext.tuning``:
``rainbow.py`` for every Rainbow preset, ``qrdqn.py`` for QR-DQN. Each defines ``sample(trial, flags)``."""
