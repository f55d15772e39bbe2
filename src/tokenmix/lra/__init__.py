"""Long Range Arena: task data (loaders and generators), LRA-style configs, training and the
speed/memory table at long sequence lengths."""
