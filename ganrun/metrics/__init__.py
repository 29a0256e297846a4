"""Metrics: the scores themselves (scores: FD, KID, precision / recall / density / coverage, the 2-D
protocol), the feature networks (features: shipped; classifier: trained on first use), the evaluator that
scores a generator beside real data (evaluator), discriminator rejection sampling (rejection) and the
1-D game's curves (game1d). Training and the `eval` command call the evaluator; nothing here trains a GAN."""
