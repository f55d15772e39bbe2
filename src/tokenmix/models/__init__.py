"""The models: one encoder shared by every variant, its mixing sublayers and its task heads.

Read it top down: :mod:`.config` (the fields and size presets) -> :mod:`.registry` (named variants)
-> :mod:`.encoder` (embeddings, blocks, pooler) built from :mod:`.layers`, :mod:`.moe` and
:mod:`.mixing` -> :mod:`.heads` -> :mod:`.factory` (build, create, load). ``config`` and
``registry`` import no torch, so the command line can read them cheaply.
"""
