"""Task metrics computed with scikit-learn / scipy (``glue``, ``superglue``)."""
