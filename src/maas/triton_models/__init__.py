"""Triton Python-backend model files that export and serve copy into model repositories.

Each module here is a complete `model.py` for Triton's Python backend; it runs inside
Triton's stub process (where `triton_python_backend_utils` exists), not in maas itself.
"""

from pathlib import Path

HERE = Path(__file__).parent
IMAGE_PREPROCESS = HERE / "image_preprocess.py"
RUNTIME_ADAPTER = HERE / "runtime_adapter.py"
TOKENIZER = HERE / "tokenizer.py"
