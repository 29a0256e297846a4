"""Training: the one place a config becomes objects (build), the loop (loop: fit), one run from config to
summary (run), what a step does (objectives, losses, regularizers, updates), and what happens around the
step (callbacks), with augmentation, mixed precision, health signals and several processes (distributed)."""
