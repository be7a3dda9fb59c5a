"""The LFW fold experiment (``alob-pipeline``): the project's commands run one after another on
LFW's identity-disjoint View-2 folds — align, build the occluded and masked sets, train each
variant, evaluate, CAM, t-SNE — and a report comparing ALOB with the baseline."""
