"""Replicates: a model trained again with another seed, to measure seed noise.

Stage ``replicate@<model>-<seed>`` (``python -m stages.replicate MODEL SEED``) trains one
(:mod:`intro_cnn.replicates.train`) and tests it in the same process; :mod:`.outputs` writes
and reads what it leaves (``replicates/<model>-<seed>.keras``, and ``metrics.json`` and
``history.csv`` under ``reports/replicates/<model>-<seed>/``). The compare stage and the gate
read them through :func:`intro_cnn.replicates.outputs.read_replicate`. A model's designated
model (``models/<model>.keras``, seed ``seed.seed``) is never a replicate.
"""
