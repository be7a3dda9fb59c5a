"""Evaluation of face embedders: pair verification over benchmarks (accuracy, TAR@FAR, ROC),
closed-set identification (AR protocols), reports, Grad-CAM of the Trimmer against occlusion
masks, and t-SNE pictures; the ``alob-eval`` command.

Models come from an ``alob-train`` run (:mod:`alob_train.embed`), a published reference model
(:mod:`alob_eval.reference_models`) or an ``.npz`` of embeddings (:mod:`alob_eval.embeddings`).
"""
