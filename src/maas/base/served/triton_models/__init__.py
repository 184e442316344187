"""Triton Python-backend model files that export and serve copy into model repositories.

Each module here is a complete `model.py` for Triton's Python backend and a thin shell over a
served-model core of `maas.base.served`; it runs inside Triton's stub process (where
`triton_python_backend_utils` exists), not in maas itself. The preprocess and tokenizer shells
import their core from a copy beside them (Triton puts the version folder on the stub's path),
so the canonical repository needs no maas where it is served.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from maas.base.triton.config import PYTHON_FILE

HERE = Path(__file__).parent
SERVED = HERE.parent


@dataclass(frozen=True)
class PythonModelFiles:
    """A shell and the core it imports, as they are laid into a version folder."""

    shell: Path
    core: Path | None = None
    core_file: str = ""  # the name the shell imports the core by, plus .py

    def install(self, folder: Path) -> Path:
        """Copy the shell as model.py and its core beside it; returns model.py's path."""
        folder.mkdir(parents=True, exist_ok=True)
        code = folder / PYTHON_FILE
        shutil.copyfile(self.shell, code)
        if self.core is not None:
            shutil.copyfile(self.core, folder / self.core_file)
        return code


IMAGE_PREPROCESS = PythonModelFiles(
    HERE / "image_preprocess.py", SERVED / "image.py", "maas_image.py"
)
TOKENIZER = PythonModelFiles(HERE / "tokenizer.py", SERVED / "text.py", "maas_text.py")
RUNTIME_ADAPTER = PythonModelFiles(HERE / "runtime_adapter.py")  # imports maas itself
GENERATOR = PythonModelFiles(HERE / "generator.py", SERVED / "generation.py", "maas_generation.py")
