"""SAC: configuration, the soft Bellman target, entropy tuning, the learner and the policy.

Soft Actor-Critic as in Haarnoja et al. 2018b ("Soft Actor-Critic Algorithms and
Applications"): twin Q-networks with Polyak-averaged targets, a tanh-squashed Gaussian
actor trained through the reparameterisation trick, and a temperature alpha tuned so
the policy's entropy stays near a target, -dim(A).

The learner takes replay `Transition` batches with actions in the environment's Box scale
and maps them to the actor's [-1, 1]. Rollout workers act with `SACPolicy` (the actor only)
and uniformly at random until `learning_starts` transitions exist. `SAC` is the algorithm
record: the replay path, as DQN, with float32 Box actions. See docs/algorithms.md.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from actors.algorithms.collectors import SampledActions, TransitionCollector
from actors.algorithms.interfaces import Algorithm
from actors.algorithms.replay import RateLimiter, Transition
from actors.envs.build import EnvSpaces, VectorCollector
from actors.networks.policies import (
    ActionBounds,
    SquashedGaussianActor,
    TwinQ,
    config_from_spec,
    field_name,
    load_optimizer_state,
    module_state,
    network_from_meta,
    optimizer_state,
    require_positive,
    section,
    seeded,
)
from schemas.messages import PolicyRef, RunSpec


@dataclass(frozen=True)
class SACConfig:
    """Every setting of a SAC run: the RunSpec's own fields, then its `hyperparameters`.
    Defaults are stable-baselines3's SAC defaults ("SB3") unless noted."""

    # -- from the RunSpec's own fields --
    learning_rate: float = 3e-4  # SB3: Adam step size of actor, critics and alpha
    batch_size: int = 256  # SB3
    buffer_size: int = 1_000_000  # SB3
    gamma: float = 0.99  # SB3
    seed: int = 0
    num_workers: int = 1  # rollout workers
    # -- from RunSpec.hyperparameters --
    hidden: tuple[int, ...] = (256, 256)  # SB3: net_arch [256, 256] for actor and critics
    envs_per_worker: int = 1  # sub-environments each rollout worker steps together
    learning_starts: int = 100  # SB3: random-action transitions before the first update
    samples_per_insert: float | None = (
        None  # None: batch_size, SB3's train_freq 1, gradient_steps 1
    )
    rate_error_buffer: float | None = None  # limiter slack, samples (see DQNConfig)
    tau: float = 0.005  # SB3: Polyak weight of the target critics
    target_update_interval: int = 1  # SB3: updates between target moves
    ent_coef_init: float = 1.0  # SB3 ent_coef "auto": the temperature starts at 1
    target_entropy: float | None = None  # None: -dim(A) (Haarnoja et al. 2018b, SB3 "auto")
    weights_publish_interval: int = 10  # updates between policy weights sent to actors
    eval_interval_updates: int = 1000  # updates between greedy evaluations
    eval_episodes: int = 10  # episodes per evaluation
    # -- from RunSpec.policy --
    policy: PolicyRef | None = None  # the actor's custom torso (actors/networks/custom.py)

    @classmethod
    def from_spec(cls, spec: RunSpec) -> SACConfig:
        """The spec's fields plus its `hyperparameters` over the defaults above. An
        unknown or invalid hyperparameter is a ValueError that names it."""
        return config_from_spec(cls, spec, "sac")

    def check(self) -> None:
        positive = ("learning_rate", "batch_size", "buffer_size", "num_workers")
        positive += ("envs_per_worker", "learning_starts", "target_update_interval")
        positive += ("ent_coef_init", "weights_publish_interval", "eval_interval_updates")
        require_positive(self, (*positive, "eval_episodes"))
        if self.samples_per_insert is not None and self.samples_per_insert <= 0:
            raise ValueError("hyperparameters.samples_per_insert: must be positive")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError("hyperparameters.tau: must be in (0, 1]")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"{field_name('gamma')}: must be in [0, 1]")
        if self.learning_starts > self.buffer_size:
            raise ValueError("hyperparameters.learning_starts: larger than buffer_size")

    @property
    def num_actors(self) -> int:
        return self.num_workers * self.envs_per_worker

    @property
    def replay_ratio(self) -> float:
        """Sampled per inserted transition."""
        return float(
            self.batch_size if self.samples_per_insert is None else self.samples_per_insert
        )

    def rate_limiter(self, insert_chunk: int) -> RateLimiter:
        """The replay rate limiter, for inserts of `insert_chunk` transitions at a time."""
        minimum = (self.batch_size + insert_chunk * self.replay_ratio) / 2
        error_buffer = max(self.rate_error_buffer or minimum, minimum, 1.0, self.replay_ratio)
        return RateLimiter(self.replay_ratio, self.learning_starts, error_buffer)


def entropy_target(action_dim: int) -> float:
    """-dim(A): the heuristic target entropy of Haarnoja et al. 2018b, section 6."""
    return -float(action_dim)


def sac_critic_target(
    reward: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float,
    next_q1_target: torch.Tensor,
    next_q2_target: torch.Tensor,
    next_logp: torch.Tensor,
    alpha: torch.Tensor | float,
) -> torch.Tensor:
    """r + gamma * (1 - terminated) * (min(Q1', Q2') - alpha * log pi(a'|s')), a' ~ pi(s'):
    the soft Bellman backup with the smaller of the twin target estimates."""
    soft_next_value = torch.min(next_q1_target, next_q2_target) - alpha * next_logp
    return reward + gamma * (1.0 - terminated.float()) * soft_next_value


def alpha_loss(log_alpha: torch.Tensor, logp: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """-E[log alpha * (log pi + target entropy)] (2018b eq. 18, on log alpha as SB3 does):
    alpha grows while the entropy -E[log pi] is below the target and shrinks above it."""
    return -(log_alpha * (logp.detach() + target_entropy)).mean()


class SACLearner:
    """SAC with automatic entropy tuning, one Adam optimiser per part."""

    def __init__(
        self,
        config: SACConfig,
        spaces: EnvSpaces,
        seed: int | None = None,
        action_bounds: ActionBounds | None = None,
    ):
        if spaces.discrete or action_bounds is None:
            raise ValueError("SAC needs a Box action space and its action_bounds")
        self.config, self.bounds = config, action_bounds
        seed = config.seed if seed is None else seed
        self.actor = build_sac_actor(spaces, config.hidden, seed, action_bounds, config.policy)
        action_dim = self.actor.action_dim
        self.critic = seeded(seed + 1, lambda: TwinQ(spaces.obs_dim, action_dim, config.hidden))
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor([math.log(config.ent_coef_init)], requires_grad=True)
        self.target_entropy = (
            entropy_target(action_dim) if config.target_entropy is None else config.target_entropy
        )
        lr = config.learning_rate
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=lr, fused=True)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=lr, fused=True)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=lr)
        self.generator = torch.Generator().manual_seed(seed)  # the learner's own noise
        self.updates = 0

    def update(self, batch: Transition) -> dict[str, float]:
        config = self.config
        obs = torch.as_tensor(batch.obs)
        actions = torch.as_tensor(self.bounds.to_unit(batch.action))
        rewards = torch.as_tensor(batch.reward, dtype=torch.float32)
        next_obs = torch.as_tensor(batch.next_obs)
        terminated = torch.as_tensor(batch.terminated)

        # temperature: move alpha towards the target entropy on fresh policy samples
        pi_actions, pi_logp = self.actor.sample(obs, self._noise(len(obs)))
        alpha = self.log_alpha.exp().detach()
        temperature_loss = alpha_loss(self.log_alpha, pi_logp, self.target_entropy)
        self.alpha_optimizer.zero_grad()
        temperature_loss.backward()
        self.alpha_optimizer.step()

        # critics: regress both Q's on the soft Bellman target
        with torch.no_grad():
            next_actions, next_logp = self.actor.sample(next_obs, self._noise(len(obs)))
            next_q1, next_q2 = self.critic_target(next_obs, next_actions)
            q_target = sac_critic_target(
                rewards, terminated, config.gamma, next_q1, next_q2, next_logp, alpha
            )
        q1, q2 = self.critic(obs, actions)
        critic_loss = 0.5 * (F.mse_loss(q1, q_target) + F.mse_loss(q2, q_target))
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()

        # actor: maximise min Q - alpha * log pi through the reparameterised samples
        self.critic.requires_grad_(False)  # gradients reach the actor through Q's input only
        pi_q1, pi_q2 = self.critic(obs, pi_actions)
        actor_loss = (alpha * pi_logp - torch.min(pi_q1, pi_q2)).mean()
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        self.actor_optimizer.step()
        self.critic.requires_grad_(True)

        self.updates += 1
        if self.updates % config.target_update_interval == 0:
            self._move_targets()
        return {
            "losses/critic_loss": critic_loss.item(),
            "losses/actor_loss": actor_loss.item(),
            "losses/alpha": alpha.item(),
            "losses/alpha_loss": temperature_loss.item(),
            "losses/q_mean": q1.mean().item(),
            "losses/entropy": -pi_logp.mean().item(),
        }

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.actor.action_dim, generator=self.generator)

    @torch.no_grad()
    def _move_targets(self) -> None:
        """target <- tau * online + (1 - tau) * target."""
        for target, online in zip(
            self.critic_target.parameters(), self.critic.parameters(), strict=True
        ):
            target.lerp_(online, self.config.tau)

    def network_meta(self) -> dict[str, Any]:
        return self.actor.network_meta()

    def policy_state(self) -> dict[str, torch.Tensor]:
        """The actor's weights: what rollout workers load into `SACPolicy`."""
        return {k: v.detach().clone() for k, v in self.actor.state_dict().items()}

    def state(self) -> dict[str, torch.Tensor]:
        """Networks, temperature, optimiser states and counters as one flat dict."""
        flat = module_state("actor", self.actor) | module_state("critic", self.critic)
        flat |= module_state("critic_target", self.critic_target)
        flat["log_alpha"] = self.log_alpha.detach().clone()
        for name in ("actor", "critic", "alpha"):
            flat |= optimizer_state(f"{name}_optimizer", getattr(self, f"{name}_optimizer"))
        flat["counters.updates"] = torch.tensor(self.updates, dtype=torch.int64)
        flat["counters.generator"] = self.generator.get_state()
        return flat

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.actor.load_state_dict(section(state, "actor"))
        self.critic.load_state_dict(section(state, "critic"))
        self.critic_target.load_state_dict(section(state, "critic_target"))
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        for name in ("actor", "critic", "alpha"):
            optimizer = getattr(self, f"{name}_optimizer")
            load_optimizer_state(optimizer, state, f"{name}_optimizer")
        self.updates = int(state["counters.updates"])
        self.generator.set_state(state["counters.generator"])


def build_sac_actor(
    spaces: EnvSpaces,
    hidden: Sequence[int],
    seed: int | None,
    action_bounds: ActionBounds,
    policy: PolicyRef | None = None,
) -> SquashedGaussianActor:
    if (len(action_bounds.low),) != spaces.action_shape:
        raise ValueError(f"action_bounds do not match the action shape {spaces.action_shape}")
    return seeded(
        seed, lambda: SquashedGaussianActor(spaces.obs_dim, hidden, action_bounds, policy)
    )


class SACPolicy:
    """Batched acting: `act` samples tanh-squashed actions, `greedy` takes tanh(mean);
    both rescaled to the Box bounds, ready to step the environment with."""

    def __init__(self, actor: SquashedGaussianActor):
        self.actor = actor.eval().requires_grad_(False)
        self.bounds = actor.bounds

    @classmethod
    def from_spaces(
        cls,
        spaces: EnvSpaces,
        hidden: Sequence[int],
        seed: int | None,
        action_bounds: ActionBounds,
        policy: PolicyRef | None = None,
    ) -> SACPolicy:
        """With the run seed this is the same version-0 actor the learner starts from."""
        return cls(build_sac_actor(spaces, hidden, seed, action_bounds, policy))

    @classmethod
    def from_meta(cls, meta: dict[str, Any], policy_state: dict[str, torch.Tensor]) -> SACPolicy:
        actor = network_from_meta(meta)
        if not isinstance(actor, SquashedGaussianActor):
            raise ValueError(f"not a SAC actor: {meta.get('architecture')!r}")
        policy = cls(actor)
        policy.load(policy_state)
        return policy

    def load(self, policy_state: dict[str, torch.Tensor]) -> None:
        self.actor.load_state_dict(policy_state)

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noise = rng.standard_normal((len(obs), self.actor.action_dim)).astype(np.float32)
        with torch.inference_mode():
            unit, _ = self.actor.sample(torch.as_tensor(obs), torch.as_tensor(noise))
        return self.bounds.from_unit(unit.numpy())

    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform actions over the Box: the warm-up before `learning_starts`."""
        return rng.uniform(self.bounds.low, self.bounds.high, (n, len(self.bounds.low))).astype(
            np.float32
        )

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            mean, _ = self.actor(torch.as_tensor(obs))
        return self.bounds.from_unit(torch.tanh(mean).numpy())


class GreedySquashed(torch.nn.Module):
    """tanh of the actor's mean, rescaled to the Box: what `runt export` writes."""

    def __init__(self, policy: SACPolicy):
        super().__init__()
        self.body, self.mean_head = policy.actor.body, policy.actor.mean_head
        self.register_buffer("low", torch.as_tensor(policy.bounds.low))
        self.register_buffer("high", torch.as_tensor(policy.bounds.high))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        unit = torch.tanh(self.mean_head(self.body(obs.reshape(obs.shape[0], -1).float())))
        return self.low + (unit + 1.0) * 0.5 * (self.high - self.low)


def warm_up_collector(
    config: SACConfig,
    policy: SACPolicy,
    vector: VectorCollector,
    worker: int,
    rng: np.random.Generator,
) -> TransitionCollector:
    """Transitions of uniform random actions until the run has `learning_starts` env
    steps (the serial loop's warm-up), then of actions sampled from the actor."""

    def choose(obs: np.ndarray, run_steps: int) -> np.ndarray:
        if run_steps < config.learning_starts:
            return policy.random(len(obs), rng)
        return policy.act(obs, rng)

    return TransitionCollector(vector, choose)


SAC = Algorithm(
    name="sac",
    config=SACConfig,
    buffer="replay",
    action_kinds=("box",),
    make_learner=lambda config, shape, seed: SACLearner(config, shape.spaces, seed, shape.bounds),
    make_policy=lambda config, shape, seed: SACPolicy.from_spaces(
        shape.spaces, config.hidden, seed, shape.bounds, config.policy
    ),
    make_collector=warm_up_collector,
    policy_from_meta=SACPolicy.from_meta,
    policy_prefix="actor.",
    acting_policy=lambda policy: SampledActions(policy, policy.act),
    greedy_module=GreedySquashed,
)
