"""GLUE and SuperGLUE: readers for the official file layouts, one adapter per task (how examples
become model inputs and predictions become metrics), the metrics themselves and submission files."""
