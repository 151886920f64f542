"""DN2 on other layers of the frozen backbone: the 5th-nearest-neighbour distance of the unit,
globally pooled maps of stage 6, stage 7 (the `knn-features` baseline), the 1x1 head conv
after it (1280 channels, what an ImageNet classifier reads) and stages 7 and head together
(each unit-normalised, then concatenated), at 160 px.

Usage: python dn2_stages.py DATA OUT_CSV [CLASSES]  (the protocol of docs/benchmarks.md's
bfloat16 CIFAR-10 run: 1,000 training and 2,000 test images per class, seed 0).
"""

import sys

import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from skmcad.baselines._frozen_backbone import _load_backbone, backbone_input, kth_neighbour_distance
from skmcad.benchmark.protocols import Cifar10
from skmcad.inputs import infer_layout, iter_batches
from skmcad.nn.pretrained_encoder import frozen_stage_maps

LAYERS = {"stage 6": [6], "stage 7": [7], "head": [8], "stage 7 + head": [7, 8]}


def pooled(backbone, X):
    """{stage: (n, C) unit pooled map} for stages 6, 7 and 8 (the head)."""
    layout, parts = infer_layout(X), []
    for batch in iter_batches(X, layout, 256):
        maps = frozen_stage_maps(backbone, backbone_input(batch, 160, torch.device("cpu")),
                                 [6, 7, 8])
        parts.append([F.normalize(m.float().mean(dim=(2, 3)), dim=1) for m in maps])
    return {s: torch.cat(p) for s, p in zip((6, 7, 8), zip(*parts))}


def main(data_dir, out, classes="0,1,2,3,4,5,6,7,8,9"):
    torch.set_num_threads(2)
    backbone = _load_backbone("efficientnet-lite0", 8, torch.device("cpu"))
    rows = []
    for task in Cifar10(data_dir, max_train=1000, max_test=2000).load_tasks(classes):
        train, test = pooled(backbone, task.X_fit), pooled(backbone, task.X_eval)
        row = {"class": int(task.subset)}
        for name, stages in LAYERS.items():
            a, b = (torch.cat([side[s] for s in stages], dim=1) for side in (train, test))
            row[name] = roc_auc_score(task.y_eval, kth_neighbour_distance(b, a, 5).numpy())
        rows.append(row)
        print(row, flush=True)
    pd.DataFrame(rows).to_csv(out, index=False)


if __name__ == "__main__":
    main(*sys.argv[1:])
