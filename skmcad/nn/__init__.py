"""The torch modules of the method, one concept a file.

- :mod:`~skmcad.nn.encoders`: the residual CNN and the tabular MLP (multi-scale encoders);
- :mod:`~skmcad.nn.pretrained_encoder`: the frozen ImageNet EfficientNet-Lite0 with adapters
  (its network in :mod:`~skmcad.nn.efficientnet`);
- :mod:`~skmcad.nn.hopfield_memory`, :mod:`~skmcad.nn.grid_memory`: the learnable memories;
- :mod:`~skmcad.nn.neighbour_memory`: the kNN bank (the no-memory ablation, the kNN scale of
  tables);
- :mod:`~skmcad.nn.heads`: projection heads; :mod:`~skmcad.nn.losses`: the stage-1 losses;
- :mod:`~skmcad.nn.network`: the MCAD network that puts them together.
"""
