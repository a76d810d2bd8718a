"""Search spaces of ``python -m rainbow_ext.tune``, shipped with rainbow_ext as ``rainbow_ext.tuning``:
``dqn.py`` for SB3's DQN and the DQN part the others extend, ``rainbow.py`` for every Rainbow preset,
``qrdqn.py`` for QR-DQN. Each defines ``sample(trial, flags)``."""
