"""Feature maps as rows of position vectors."""


def positions(features):
    """(B, C, H, W) -> (B*H*W, C): one query per spatial position."""
    return features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
