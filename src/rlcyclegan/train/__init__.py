"""Training loops: QT-Opt (``train qtopt``) and, later, RL-CycleGAN."""
