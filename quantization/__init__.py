"""Structured pruning, int8 post-training quantization and export of student networks."""
