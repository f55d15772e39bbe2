"""Pretraining data: :mod:`.prepare` tokenizes a text corpus once into memory-mappable shards, and
:mod:`.pretraining` builds MLM + NSP batches from them as a pure function of (seed, step, example),
so resumed and multi-process runs see exactly the same data without any loader state to save.
"""
