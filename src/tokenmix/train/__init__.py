"""Training loops: MLM + NSP pretraining (single process or torchrun DDP/FSDP) with exact resume."""
