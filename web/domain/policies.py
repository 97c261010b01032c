"""What a user may do with the trained policy of a run of theirs once it has a checkpoint:
play it from a given start state (web/inference.py), export its weights as a safetensors
file, and watch greedy episodes of it as a GIF.

Loaded policies and rendered GIFs are kept in small caches keyed by checkpoint version,
so a newer checkpoint is simply a new key.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from actors.export.checkpoints import policy_file
from actors.export.visualize import CannotRender, gif_bytes, render_episodes
from schemas import api
from web import inference
from web.db import store
from web.db.engine import Database
from web.domain.errors import Impossible, Invalid
from web.domain.runs import Runs

REPLAY_CACHE_SIZE = 16


@dataclass(frozen=True)
class Policies:
    """Trained policies of the runs of `runs`, with their caches; one per web process."""

    db: Database
    runs: Runs
    cache: inference.PolicyCache = field(default_factory=inference.PolicyCache)
    gifs: dict[tuple[int, int, int], bytes] = field(default_factory=dict)  # (run, version, n)

    async def loaded(
        self, owner: int, run_id: int, version: int | None
    ) -> tuple[inference.LoadedPolicy, store.CheckpointRef]:
        """The run's newest (or named) checkpoint as a policy, from the cache if it can."""
        ref = await self.runs.checkpoint(owner, run_id, version, version_field="checkpoint")
        loaded = self.cache.get(run_id, ref.version)
        if loaded is None:
            meta, weights, _ = await self.db.run(store.checkpoint_blob, run_id, ref.version)
            loaded = await asyncio.to_thread(inference.load, run_id, ref.version, meta, weights)
            self.cache.put(loaded)
        return loaded, ref

    async def play(self, owner: int, body: api.TestModelRequest) -> dict[str, Any]:
        """One episode of the policy from `body.observation` (or the seeded reset)."""
        loaded, ref = await self.loaded(owner, body.model_id, body.checkpoint)
        if body.observation is not None and len(body.observation) != loaded.obs_dim:
            raise Invalid(
                "observation",
                f"expected a list of {loaded.obs_dim} numbers (shape [{loaded.obs_dim}]) "
                f"for {loaded.env_id}",
            )
        try:
            return await asyncio.to_thread(
                inference.run_episode,
                loaded,
                body.observation,
                body.steps,
                body.deterministic,
                ref.model_seed,
            )
        except inference.CannotSetState as exc:
            raise Impossible("observation", str(exc)) from None

    async def export(self, owner: int, run_id: int, version: int | None) -> tuple[str, bytes]:
        """(file name, safetensors file) of the policy's weights; the header metadata
        `runt` holds its JSON description (algorithm, spaces, network, version, env steps)."""
        ref = await self.runs.checkpoint(owner, run_id, version)
        meta, weights, env_steps = await self.db.run(store.checkpoint_blob, run_id, ref.version)
        body = await asyncio.to_thread(policy_file, meta, weights, ref.version, env_steps)
        return f"runt-model-{run_id}-v{ref.version}.safetensors", body

    async def replay(self, owner: int, run_id: int, version: int | None, episodes: int) -> bytes:
        """A GIF of `episodes` greedy episodes of the newest (or named) checkpoint."""
        ref = await self.runs.checkpoint(owner, run_id, version)
        key = (run_id, ref.version, episodes)
        if key not in self.gifs:
            meta, weights, _ = await self.db.run(store.checkpoint_blob, run_id, ref.version)
            try:
                frames = await asyncio.to_thread(
                    render_episodes, meta, weights, episodes, ref.model_seed, 2
                )
            except CannotRender as exc:
                raise Impossible("model_id", str(exc)) from None
            self.gifs[key] = await asyncio.to_thread(gif_bytes, frames)
            while len(self.gifs) > REPLAY_CACHE_SIZE:
                self.gifs.pop(next(iter(self.gifs)))
        return self.gifs[key]
