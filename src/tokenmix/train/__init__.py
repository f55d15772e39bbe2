"""Training: one engine (:mod:`.engine`: the step, accumulation, AMP, DDP/FSDP, evaluation, checkpoints
and exact resume, signals, time budget, progress bar, ``metrics.jsonl``) under every command —
:mod:`.pretrain` (MLM + NSP), :mod:`.supervised` (a fit with best-model selection and a learning-rate
sweep) used by :mod:`.finetune`, :mod:`.suite` (GLUE / SuperGLUE), :mod:`.distill` and LRA, and
:mod:`.demo`. Their torch-free settings are in :mod:`.configs`.
"""
