"""maas: model as a service on Triton Inference Server."""

__version__ = "0.1.0"
