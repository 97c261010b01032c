"""Training presets: the `configs/*.yaml` files whose keys are `POST /train/` fields.

The dashboard's run form is filled from these, so they are served by `GET /presets/`.
A file is a preset when it is a mapping that validates as a `TrainRequest`; the service
defaults (`runt.yaml`) and anything that does not validate are left out (and logged).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from pydantic import ValidationError

from configs import CONFIG_DIR
from schemas import api
from web.http import dump, envelope

log = logging.getLogger("runt.web")

SERVICE_CONFIG = "runt.yaml"


def description(text: str) -> str:
    """The first sentence of the file's leading comment: what the preset is for."""
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("#"):
            break
        first = line.lstrip("#").strip()
        if first:
            head, dot, _ = first.partition(". ")
            return head + "." if dot else first
    return ""


def read_preset(path: Path) -> dict[str, Any] | None:
    """{name, file, description, values} of one file, or None if it is no preset."""
    text = path.read_text(encoding="utf-8")
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        log.warning("preset %s is not valid YAML: %s", path.name, exc)
        return None
    if not isinstance(values, dict):
        log.warning("preset %s is not a mapping of POST /train/ fields", path.name)
        return None
    try:
        api.TrainRequest.model_validate(values)
    except ValidationError as exc:
        log.warning("preset %s does not validate: %s", path.name, exc)
        return None
    return {
        "name": path.stem,
        "file": path.name,
        "description": description(text),
        "values": values,
    }


@functools.cache
def load_presets(directory: Path = CONFIG_DIR) -> tuple[dict[str, Any], ...]:
    """Every preset in `directory`, by file name; read once per process."""
    found = (read_preset(p) for p in sorted(directory.glob("*.yaml")) if p.name != SERVICE_CONFIG)
    return tuple(p for p in found if p is not None)


async def list_presets(request: web.Request) -> web.Response:
    presets = await asyncio.to_thread(load_presets)
    return envelope(dump(api.PresetList, {"presets": list(presets)}))
