"""PPO: configuration, GAE, the clipped objective, the rollout `Segment`, learner and policy.

* `PPOConfig` — every setting of a run, from a `RunSpec`, frozen and validated.
* `collect_segment` + `PPOPolicy` — what a rollout worker runs: `n_steps` steps of its
  vector env with the latest policy, shipped as one `Segment`.
* `PPOLearner` — `update(segments)`: GAE, then `n_epochs` of shuffled minibatches on the
  clipped surrogate + value loss - entropy bonus. `policy_state()` (policy and value:
  workers compute GAE's values) for workers; `state()` / `load_state()` for checkpoints.

Each `update` wants segments of the current policy version: over the broker, the on-policy
path of the `PPO` record (actors/roles/onpolicy.py, docs/algorithms.md).

References: Schulman et al. 2017 ("Proximal Policy Optimization Algorithms"); Schulman et
al. 2016 (GAE); Pardo et al. 2018 (time limits); defaults from stable-baselines3's PPO.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from actors.algorithms.collectors import SampledActions
from actors.algorithms.interfaces import Algorithm, Collected
from actors.envs.build import EnvSpaces, Episode, VectorCollector
from actors.networks.policies import (
    ActionBounds,
    ActorCritic,
    build_actor_critic,
    config_from_spec,
    field_name,
    load_optimizer_state,
    module_state,
    network_from_meta,
    optimizer_state,
    require_positive,
    section,
)
from schemas.messages import PolicyRef, RunSpec

Schedule = Literal["constant", "linear"]


@dataclass(frozen=True)
class PPOConfig:
    """Every setting of a PPO run: the RunSpec's own fields (its buffer_size is unused:
    a rollout is `n_steps` x every env), then its `hyperparameters`. Defaults are
    stable-baselines3's PPO defaults ("SB3") unless noted."""

    # -- from the RunSpec's own fields --
    learning_rate: float = 3e-4  # SB3: Adam step size (eps 1e-5, SB3's ActorCriticPolicy)
    batch_size: int = 64  # SB3: minibatch size
    gamma: float = 0.99  # SB3
    seed: int = 0
    num_workers: int = 1  # rollout workers
    # -- from RunSpec.hyperparameters --
    n_steps: int = 2048  # SB3: steps per env per rollout (one Segment)
    envs_per_worker: int = 1  # sub-environments each rollout worker steps together
    n_epochs: int = 10  # SB3: passes over each rollout
    gae_lambda: float = 0.95  # SB3
    clip_range: float = 0.2  # SB3 (Schulman et al. 2017: epsilon = 0.2)
    ent_coef: float = 0.0  # SB3
    vf_coef: float = 0.5  # SB3
    max_grad_norm: float = 0.5  # SB3: global gradient-norm clip
    normalize_advantage: bool = True  # SB3: per minibatch
    learning_rate_schedule: Schedule = "constant"  # linear: zoo's lin_<lr>, to 0 at the budget
    clip_range_schedule: Schedule = "constant"  # linear: zoo's lin_<clip>
    schedule_budget_steps: int = 1_000_000  # env steps the linear schedules span (zoo n_timesteps)
    hidden: tuple[int, ...] = (64, 64)  # SB3 MlpPolicy: pi=[64, 64], vf=[64, 64], tanh
    eval_interval_updates: int = 10  # updates (rollouts) between greedy evaluations
    eval_episodes: int = 10  # episodes per evaluation
    # -- from RunSpec.policy --
    policy: PolicyRef | None = (
        None  # custom torsos (actors/networks/custom.py); None: MLPs of hidden
    )

    @classmethod
    def from_spec(cls, spec: RunSpec) -> PPOConfig:
        """The spec's fields plus its `hyperparameters` over the defaults above. An
        unknown or invalid hyperparameter is a ValueError that names it."""
        return config_from_spec(cls, spec, "ppo")

    def check(self) -> None:
        require_positive(self, ("learning_rate", "batch_size", "num_workers", "n_steps"))
        require_positive(self, ("envs_per_worker", "n_epochs", "clip_range", "max_grad_norm"))
        require_positive(self, ("schedule_budget_steps", "eval_interval_updates", "eval_episodes"))
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{field_name(name)}: must be in [0, 1]")

    @property
    def weights_publish_interval(self) -> int:
        """On-policy: every update is a new policy version, sent to every worker."""
        return 1

    @property
    def rollout_size(self) -> int:
        """Transitions per update when every worker sends one segment."""
        return self.num_workers * self.envs_per_worker * self.n_steps

    def scheduled(self, name: Literal["learning_rate", "clip_range"], env_steps: int) -> float:
        """The value of `name` after `env_steps`: constant, or falling linearly to 0 at
        `schedule_budget_steps` (SB3's progress_remaining)."""
        if getattr(self, f"{name}_schedule") == "constant":
            return getattr(self, name)
        return getattr(self, name) * max(0.0, 1.0 - env_steps / self.schedule_budget_steps)


class Segment(NamedTuple):
    """What one rollout worker sends per `n_steps` for its N sub-environments; arrays
    are time-major, (T, N, ...) with T = n_steps. Episodes may end anywhere inside it
    (SAME_STEP autoreset: the next row already belongs to the new episode).

    Bootstrapping: the tail bootstraps from `last_value` = V(`last_obs`); a step where
    the episode hit a time limit (`truncated`, not `terminated`) bootstraps from
    `final_value` = V(the episode's final observation), which the worker computes because
    that observation is not in `obs`; a `terminated` step does not bootstrap."""

    obs: np.ndarray  # (T, N, *obs_shape) observations the actions were chosen on
    action: np.ndarray  # (T, N) int64, or (T, N, A) float32 unclipped Gaussian samples
    logp: np.ndarray  # (T, N) float32, log-prob of `action` under the acting policy
    value: np.ndarray  # (T, N) float32, V(obs) by the acting policy
    reward: np.ndarray  # (T, N) float32
    terminated: np.ndarray  # (T, N) bool, a real terminal state
    truncated: np.ndarray  # (T, N) bool, ended by a time limit and not terminated
    final_value: np.ndarray  # (T, N) float32, V(final obs) where truncated, else 0
    last_obs: np.ndarray  # (N, *obs_shape), after the last step (unused by PPOLearner)
    last_value: np.ndarray  # (N,) float32, V(last_obs)

    @property
    def env_steps(self) -> int:
        return self.reward.size

    def advantages(self, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
        """`compute_gae` on this segment: (advantages, returns), each (T, N)."""
        return compute_gae(
            self.reward,
            self.value,
            self.terminated,
            self.truncated,
            self.final_value,
            self.last_value,
            gamma,
            lam,
        )


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    final_values: np.ndarray,
    last_values: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimates and returns (advantages + values), time-major.

    delta_t = r_t + gamma * V_next - V_t with V_next = 0 after a termination,
    V(final obs) after a truncation, else V(obs_t+1) (`last_values` after the last step);
    A_t = delta_t + gamma * lam * A_t+1, the sum cut wherever an episode ended."""
    n_steps = len(rewards)
    advantages = np.zeros_like(values, dtype=np.float32)
    next_advantage = np.zeros_like(last_values, dtype=np.float32)
    next_values = last_values
    for t in reversed(range(n_steps)):
        bootstrap = np.where(truncated[t], final_values[t], next_values)
        not_terminal = 1.0 - terminated[t]
        delta = rewards[t] + gamma * not_terminal * bootstrap - values[t]
        episode_goes_on = 1.0 - np.logical_or(terminated[t], truncated[t])
        advantages[t] = next_advantage = delta + gamma * lam * episode_goes_on * next_advantage
        next_values = values[t]
    return advantages, advantages + values


def ppo_clipped_loss(
    new_logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """-E[min(ratio * A, clip(ratio, 1 - clip, 1 + clip) * A)] (Schulman et al. 2017,
    eq. 7) and the fraction of samples whose ratio left [1 - clip, 1 + clip]."""
    ratio = torch.exp(new_logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * advantages
    loss = -torch.min(unclipped, clipped).mean()
    clip_fraction = ((ratio - 1.0).abs() > clip).float().mean()
    return loss, clip_fraction


def approx_kl(new_logp: torch.Tensor, old_logp: torch.Tensor) -> torch.Tensor:
    """KL(old || new) estimated as E[(ratio - 1) - log ratio] (Schulman's k3 estimator)."""
    log_ratio = new_logp - old_logp
    return (torch.exp(log_ratio) - 1.0 - log_ratio).mean()


def explained_variance(predicted: np.ndarray, target: np.ndarray) -> float:
    """1 - Var(target - predicted) / Var(target); 1 is perfect, <= 0 no better than a mean."""
    variance = np.var(target)
    return float("nan") if variance == 0 else float(1.0 - np.var(target - predicted) / variance)


class PPOLearner:
    """PPO-Clip with GAE, per-minibatch advantage normalisation, Adam and grad clipping."""

    def __init__(
        self,
        config: PPOConfig,
        spaces: EnvSpaces,
        seed: int | None = None,
        action_bounds: ActionBounds | None = None,
    ):
        self.config = config
        self.seed = config.seed if seed is None else seed
        self.network = build_actor_critic(
            spaces, config.hidden, self.seed, action_bounds, config.policy
        )
        self.optimizer = torch.optim.Adam(
            self.network.parameters(), lr=config.learning_rate, eps=1e-5, fused=True
        )
        self.updates = 0  # the policy version
        self.env_steps = 0  # transitions consumed, for the linear schedules

    def update(self, segments: list[Segment]) -> dict[str, float]:
        config = self.config
        b_obs, b_actions, b_logp, b_values, b_advantages, b_returns = self._flatten(segments)
        learning_rate = config.scheduled("learning_rate", self.env_steps)
        clip = config.scheduled("clip_range", self.env_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate

        rng = np.random.default_rng([self.seed, self.updates])  # resumes without saved state
        batch = len(b_returns)
        totals: dict[str, float] = {}
        for _ in range(config.n_epochs):
            b_inds = torch.as_tensor(rng.permutation(batch))
            for start in range(0, batch, config.batch_size):
                mb_inds = b_inds[start : start + config.batch_size]
                new_logp, entropy, new_values = self.network.evaluate_actions(
                    b_obs[mb_inds], b_actions[mb_inds]
                )
                mb_advantages = b_advantages[mb_inds]
                if config.normalize_advantage and len(mb_inds) > 1:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (
                        mb_advantages.std() + 1e-8
                    )
                policy_loss, clip_fraction = ppo_clipped_loss(
                    new_logp, b_logp[mb_inds], mb_advantages, clip
                )
                value_loss = F.mse_loss(new_values, b_returns[mb_inds])
                entropy_mean = entropy.mean()
                loss = policy_loss - config.ent_coef * entropy_mean + config.vf_coef * value_loss

                self.optimizer.zero_grad()
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    self.network.parameters(), config.max_grad_norm
                )
                self.optimizer.step()
                step_metrics = {
                    "losses/policy_loss": policy_loss,
                    "losses/value_loss": value_loss,
                    "losses/entropy": entropy_mean,
                    "losses/approx_kl": approx_kl(new_logp.detach(), b_logp[mb_inds]),
                    "losses/clip_fraction": clip_fraction,
                    "losses/grad_norm": grad_norm,
                }
                for name, value in step_metrics.items():
                    totals[name] = totals.get(name, 0.0) + value.item()

        steps = config.n_epochs * -(-batch // config.batch_size)
        self.updates += 1
        self.env_steps += batch
        metrics = {name: total / steps for name, total in totals.items()}
        metrics["losses/explained_variance"] = explained_variance(
            b_values.numpy(), b_returns.numpy()
        )
        metrics["losses/learning_rate"] = learning_rate
        metrics["losses/clip_range"] = clip
        return metrics

    def _flatten(self, segments: list[Segment]) -> tuple[torch.Tensor, ...]:
        """GAE per segment, then every field as one flat batch of tensors."""
        gamma, lam = self.config.gamma, self.config.gae_lambda
        advantages, returns = zip(*(s.advantages(gamma, lam) for s in segments), strict=True)

        def flat(arrays, dtype=np.float32) -> torch.Tensor:  # (T, N, ...) -> (T * N, ...)
            joined = np.concatenate([a.reshape(-1, *a.shape[2:]) for a in arrays])
            return torch.as_tensor(joined if dtype is None else joined.astype(dtype))

        action_dtype = np.int64 if self.network.discrete else np.float32
        return (
            flat([s.obs for s in segments], None),
            flat([s.action for s in segments], action_dtype),
            flat([s.logp for s in segments]),
            flat([s.value for s in segments]),
            flat(advantages),
            flat(returns),
        )

    def network_meta(self) -> dict[str, Any]:
        return self.network.network_meta()

    def policy_state(self) -> dict[str, torch.Tensor]:
        """The whole actor-critic: what rollout workers load into `PPOPolicy`."""
        return {k: v.detach().clone() for k, v in self.network.state_dict().items()}

    def state(self) -> dict[str, torch.Tensor]:
        """Network, optimiser state and counters as one flat dict of tensors."""
        flat = module_state("network", self.network) | optimizer_state("optimizer", self.optimizer)
        flat["counters.updates"] = torch.tensor(self.updates, dtype=torch.int64)
        flat["counters.env_steps"] = torch.tensor(self.env_steps, dtype=torch.int64)
        return flat

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.network.load_state_dict(section(state, "network"))
        load_optimizer_state(self.optimizer, state, "optimizer")
        self.updates = int(state["counters.updates"])
        self.env_steps = int(state["counters.env_steps"])


class PPOPolicy:
    """Batched acting for rollout workers (sampled actions, their log-probs and values)
    and evaluation (`greedy`: the most likely action, or the Gaussian mean, clipped)."""

    def __init__(self, network: ActorCritic):
        self.network = network.eval().requires_grad_(False)

    @classmethod
    def from_spaces(
        cls,
        spaces: EnvSpaces,
        hidden: Sequence[int],
        seed: int | None = None,
        action_bounds: ActionBounds | None = None,
        policy: PolicyRef | None = None,
    ) -> PPOPolicy:
        """With the run seed this is the same version-0 policy the learner starts from."""
        return cls(build_actor_critic(spaces, hidden, seed, action_bounds, policy))

    @classmethod
    def from_meta(cls, meta: dict[str, Any], policy_state: dict[str, torch.Tensor]) -> PPOPolicy:
        network = network_from_meta(meta)
        if not isinstance(network, ActorCritic):
            raise ValueError(f"not a PPO network: {meta.get('architecture')!r}")
        policy = cls(network)
        policy.load(policy_state)
        return policy

    def load(self, policy_state: dict[str, torch.Tensor]) -> None:
        self.network.load_state_dict(policy_state)

    def act(
        self, obs: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(actions, log-probs, values), one per row of `obs`; the draws come from `rng`.
        Box actions are the raw Gaussian samples: step the env with `env_actions(...)`."""
        with torch.inference_mode():
            obs_t = torch.as_tensor(obs)
            out = self.network.policy_out(obs_t)
            if self.network.discrete:
                cdf = torch.softmax(out.double(), dim=-1).cumsum(-1).numpy()
                draws = rng.random((len(obs), 1))
                actions_np = np.minimum((cdf < draws).sum(1), cdf.shape[1] - 1)
            else:
                noise = rng.standard_normal(out.shape).astype(np.float32)
                actions_np = (out + self.network.log_std.exp() * torch.as_tensor(noise)).numpy()
            logp, _ = self.network.log_prob_entropy(out, torch.as_tensor(actions_np))
            values = self.network.value(obs_t)
        return actions_np, logp.numpy(), values.numpy()

    def value(self, obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.network.value(torch.as_tensor(obs)).numpy()

    def env_actions(self, actions: np.ndarray) -> np.ndarray:
        """What the environment is stepped with: Box samples clipped to the bounds."""
        bounds = self.network.bounds
        return actions if bounds is None else bounds.clip(actions)

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self.network.policy_out(torch.as_tensor(obs))
        return out.argmax(dim=1).numpy() if self.network.discrete else self.env_actions(out.numpy())


def collect_segment(
    collector: VectorCollector, policy: PPOPolicy, n_steps: int, rng: np.random.Generator
) -> tuple[Segment, list[Episode]]:
    """`n_steps` steps of every sub-environment with `policy`: a rollout worker's segment
    and the training episodes that ended in it."""
    rows: dict[str, list[np.ndarray]] = {name: [] for name in Segment._fields[:8]}
    episodes: list[Episode] = []
    for _ in range(n_steps):
        obs = collector.obs
        actions, logp, values = policy.act(obs, rng)
        transition, finished = collector.step(policy.env_actions(actions))
        ended = np.zeros(collector.num_envs, dtype=bool)
        ended[[e.env_index for e in finished]] = True
        truncated = ended & ~transition.terminated
        final_value = np.zeros(collector.num_envs, dtype=np.float32)
        if truncated.any():  # transition.next_obs holds the final observation there
            final_value[truncated] = policy.value(transition.next_obs[truncated])
        step = (obs, actions, logp, values, transition.reward, transition.terminated)
        for name, value in zip(Segment._fields[:8], (*step, truncated, final_value), strict=True):
            rows[name].append(value)
        episodes += finished
    last_obs = collector.obs
    arrays = {name: np.stack(values) for name, values in rows.items()}
    return Segment(**arrays, last_obs=last_obs, last_value=policy.value(last_obs)), episodes


class SegmentCollector:
    """The on-policy path's collector: each call is one `Segment` of `n_steps` steps of
    every sub-environment with the worker's current policy (`collect_segment`)."""

    def __init__(
        self, vector: VectorCollector, policy: PPOPolicy, n_steps: int, rng: np.random.Generator
    ):
        self.vector, self.policy, self.n_steps, self.rng = vector, policy, n_steps, rng

    def collect(self, run_steps: int) -> Collected:
        segment, episodes = collect_segment(self.vector, self.policy, self.n_steps, self.rng)
        return Collected(segment._asdict(), episodes, segment.env_steps)

    def flush(self) -> None:
        """Nothing is held back: every call returns its whole segment."""
        return None


class GreedyActorCritic(torch.nn.Module):
    """The most likely action, or the Gaussian mean clipped to the Box: what `runt
    export` writes (the value network stays behind)."""

    def __init__(self, policy: PPOPolicy):
        super().__init__()
        network = policy.network
        self.body, self.head = network.policy_body, network.policy_head
        bounds = network.bounds
        self.discrete = bounds is None
        low = torch.zeros(1) if bounds is None else torch.as_tensor(bounds.low)
        high = torch.zeros(1) if bounds is None else torch.as_tensor(bounds.high)
        self.register_buffer("low", low)
        self.register_buffer("high", high)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.head(self.body(obs.reshape(obs.shape[0], -1).float()))
        if self.discrete:
            return out.argmax(dim=1)
        return torch.maximum(torch.minimum(out, self.high), self.low)


def sampled_env_actions(policy: PPOPolicy) -> SampledActions:
    """Inference's sampled acting: Gaussian samples clipped, or categorical draws."""
    return SampledActions(policy, lambda obs, rng: policy.env_actions(policy.act(obs, rng)[0]))


PPO = Algorithm(
    name="ppo",
    config=PPOConfig,
    buffer="on_policy",
    action_kinds=("discrete", "box"),
    make_learner=lambda config, shape, seed: PPOLearner(config, shape.spaces, seed, shape.bounds),
    make_policy=lambda config, shape, seed: PPOPolicy.from_spaces(
        shape.spaces, config.hidden, seed, shape.bounds, config.policy
    ),
    make_collector=lambda config, policy, vector, worker, rng: SegmentCollector(
        vector, policy, config.n_steps, rng
    ),
    policy_from_meta=PPOPolicy.from_meta,
    policy_prefix="network.",
    acting_policy=sampled_env_actions,
    greedy_module=GreedyActorCritic,
    segment_type=Segment,
)
