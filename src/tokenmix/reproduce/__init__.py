"""The papers' studies reproduced end to end at a chosen scale (``tokenmix reproduce``)."""
