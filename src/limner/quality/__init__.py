"""Quality monitoring that needs no torch: the Fréchet distance, drift rules, MLflow logging.

Scoring itself (CLIP through transformers) runs in workers: ``limner.quality.monitor``.
"""
