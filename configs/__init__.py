"""YAML configuration shipped with runt: service defaults (runt.yaml) and training presets."""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
