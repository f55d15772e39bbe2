"""Text: the tokenizer (:mod:`.tokenizer`), pretraining data (:mod:`.prepare` writes memory-mappable
shards once; :mod:`.pretraining` builds MLM + NSP batches from them as a pure function of (seed, step,
example)), classification inputs (:mod:`.pairs`) and the fine-tuned classifier (:mod:`.classifier`).
"""
