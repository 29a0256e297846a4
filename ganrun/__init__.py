"""ganrun: a small command-line runner for GAN experiments."""

__version__ = "0.1.0"
