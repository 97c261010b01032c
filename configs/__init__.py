"""YAML configuration shipped with runt: service defaults (runt.yaml) and training presets.

See docs/configuration.md and docs/algorithms.md (presets).
"""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
