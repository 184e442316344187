"""Naming conventions shared by export (which writes them) and clients (which rely on them)."""

IMAGE_ENSEMBLE_SUFFIX = "_image"  # <model>_image: the ensemble that takes encoded image bytes
TEXT_ENSEMBLE_SUFFIX = "_text"  # <model>_text: the ensemble that takes raw strings
