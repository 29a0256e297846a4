"""A G trained on clusters within the classes, asked for classes.

With labels and train.clusters (ganrun.data.clusters.Nested), G and D learn each class as a few
k-means clusters of its images: finer conditioning, as self-conditioning on unlabelled data, while
every cluster stays inside one class. The trained G takes a cluster; a user, the metrics and the
exports ask for a class. ByClass turns one into the other: for class c it takes one of c's clusters,
in proportion to the images the cluster holds, so the samples of a class follow the class's own mix.
The cluster is read off z itself (its normalised sum, uniform through the prior's CDF), so the same z
and class give the same image every time, with no random draw that a seed would not fix.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def cluster_table(class_of: Tensor, sizes: Tensor) -> Tensor:
    """(classes, clusters): row c the cumulative share of class c's images in each cluster, ending at 1.0."""
    n_classes = int(class_of.max()) + 1
    share = torch.zeros(n_classes, len(class_of), dtype=torch.float64)
    share[class_of, torch.arange(len(class_of))] = sizes.double().clamp(min=1)
    cum = share.cumsum(dim=1)
    return (cum / cum[:, -1:]).float()  # entries past a class's last cluster are exactly 1.0


class ByClass(nn.Module):
    """G over clusters (G.class_of: each cluster's class; G.cluster_sizes: its images), taking classes."""

    def __init__(self, G: nn.Module):
        super().__init__()
        self.G = G
        self.register_buffer("table", cluster_table(G.class_of, G.cluster_sizes))
        self.n_classes = self.table.shape[0]
        self.latent_dim, self.latent = G.latent_dim, getattr(G, "latent", "gaussian")
        self.pseudo_classes, self.class_of = False, None
        self._scale = math.sqrt(3.0) if self.latent == "uniform" else 1.0  # sum of U(-1, 1): variance d / 3

    def clusters(self, z: Tensor, y: Tensor) -> Tensor:
        """The cluster each (z, class) pair is drawn from."""
        flat = z.flatten(1).float()
        u = 0.5 * (1 + torch.erf(flat.sum(dim=1) * self._scale / math.sqrt(2 * flat.shape[1])))
        u = u.clamp(1e-6, 1 - 1e-6)
        return (self.table[y.long()] < u[:, None]).sum(dim=1).clamp(max=self.table.shape[1] - 1)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.G(z, self.clusters(z, y))


def by_class(G: nn.Module) -> nn.Module:
    """G as users ask for it: ByClass where it was trained on clusters within classes, else G itself."""
    if getattr(G, "class_of", None) is None:
        return G
    return ByClass(G).to(next(G.parameters()).device).train(G.training)
