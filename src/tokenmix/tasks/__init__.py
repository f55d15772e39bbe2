"""Synthetic tasks generated on the fly, so the demo and tests need no downloads.

Each task module is deterministic from an integer seed (its own ``random.Random``, never the global
RNG), so two processes that build the same split get identical tensors.
"""
