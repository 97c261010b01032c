"""`runt export` and `runt visualize`: a model's checkpoint read from the database and
written to a file by actors/export (a policy file, TorchScript, a GIF or MP4)."""

from __future__ import annotations

import argparse
from pathlib import Path

from schemas.config import Config


def _checkpoint(cfg: Config, model_id: int, version: int | None) -> tuple[dict, bytes, int, int]:
    """(meta, weights, version, env_steps) of a model's checkpoint, from the database."""
    from web.db import store
    from web.db.engine import Database

    db = Database(cfg.database)
    try:
        version = (
            version if version is not None else db.call(store.newest_checkpoint_version, model_id)
        )
        if version is None:
            raise SystemExit(f"model {model_id}: no checkpoint yet")
        try:
            meta, weights, env_steps = db.call(store.checkpoint_blob, model_id, version)
        except Exception:
            raise SystemExit(f"model {model_id}: no checkpoint {version}") from None
    finally:
        db.close()
    return meta, weights, version, env_steps


def cmd_export(cfg: Config, args: argparse.Namespace) -> int:
    from actors.export.checkpoints import policy_file, torchscript

    meta, weights, version, env_steps = _checkpoint(cfg, args.model_id, args.version)
    if args.format == "torchscript":
        out = Path(args.out or f"model-{args.model_id}.pt")
        torchscript(meta, weights).save(str(out))
        print(f"wrote {out}: TorchScript, observations (batch, {meta['network']['obs_dim']})"
              " -> greedy actions; load with torch.jit.load")  # fmt: skip
    else:
        out = Path(args.out or f"model-{args.model_id}.safetensors")
        out.write_bytes(policy_file(meta, weights, version, env_steps))
        print(f"wrote {out}: safetensors weights, described in its metadata")
    return 0


def cmd_visualize(cfg: Config, args: argparse.Namespace) -> int:
    from actors.export.visualize import CannotRender, render_episodes, write

    meta, weights, _, _ = _checkpoint(cfg, args.model_id, args.version)
    try:
        frames = render_episodes(meta, weights, episodes=max(1, args.episodes))
        write(frames, Path(args.out))
    except CannotRender as exc:
        raise SystemExit(str(exc)) from None
    print(f"wrote {args.out}: {len(frames)} frames of {args.episodes} episode(s)")
    return 0
