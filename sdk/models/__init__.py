"""Trainable networks (teachers and students). torch only: import the submodules explicitly.

``sonoedge.models.sonic`` holds the SONIC Doppler networks; ``sonoedge.models.export`` writes and
checks ONNX. Nothing here is imported by the runtime path (``sonoedge.zoo`` runs the exported
students with onnxruntime), and this ``__init__`` imports nothing, so it stays torch-free.
"""
