"""Projection heads of the contrastive loss, one per scale."""

from torch import nn


class ProjectionHead(nn.Module):
    """Global average pooling then a two-layer MLP, as in SimCLR."""

    def __init__(self, in_channels, out_dim=64):
        super().__init__()
        hidden = max(in_channels, out_dim)
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)
        )

    def forward(self, features):
        return self.mlp(features.mean(dim=(2, 3)))  # (B, C, H, W) -> (B, out_dim)
