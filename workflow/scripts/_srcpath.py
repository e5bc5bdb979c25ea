"""Put the repository's ``src/`` first on ``sys.path``.

Imported by every adapter script, so jobs use the package code of this checkout, also inside
conda environments (which hold the dependencies only; Snakemake strips PYTHONPATH there).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
