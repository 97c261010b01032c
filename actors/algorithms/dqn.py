"""DQN: configuration, the Double-DQN target, the learner and the acting policy.

* `DQNConfig` — every setting of a run, from a `RunSpec`, frozen and validated.
* `DQNLearner` — `update(batch)` on sampled transitions, `policy_state()` for rollout
  workers, `state()` / `load_state()` for checkpoints (flat dicts of tensors). Its update is
  `NumpyQUpdate` (actors/algorithms/qmlp.py) for runt's MLP, `TorchQUpdate` otherwise.
* `QPolicy` — epsilon-greedy batched inference for rollout workers and evaluation.
* `DQN` — the algorithm record: the replay path, epsilon-greedy collection.

References: Mnih et al. 2015; van Hasselt et al. 2016 (Double DQN); n-step returns (Sutton
1988) with replay as in Hessel et al. 2018 (actors/algorithms/nstep.py). docs/algorithms.md.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import TypeAdapter, ValidationError

from actors.algorithms.collectors import TransitionCollector
from actors.algorithms.explore import (
    APEX_ALPHA,
    APEX_EPSILON,
    EpsilonSchedule,
    actor_ids,
    make_exploration,
)
from actors.algorithms.interfaces import Algorithm
from actors.algorithms.nstep import NStepTransitions
from actors.algorithms.qmlp import NumpyMLP, NumpyQUpdate
from actors.algorithms.replay import RateLimiter, Transition
from actors.envs.build import EnvSpaces, VectorCollector
from actors.networks.custom import CustomQNetwork
from actors.networks.mlp import QNetwork, build_q_network, network_from_meta
from schemas.messages import PolicyRef, RunSpec

SPEC_FIELDS = ("learning_rate", "batch_size", "buffer_size", "gamma", "seed", "num_workers")


@dataclass(frozen=True)
class DQNConfig:
    """Every setting of a DQN run: the RunSpec's own fields, then its `hyperparameters`
    (the defaults below apply to those a run leaves out)."""

    # -- from the RunSpec's own fields --
    learning_rate: float = 1e-3  # Adam step size
    batch_size: int = 64  # transitions per update
    buffer_size: int = 100_000  # replay capacity, transitions
    gamma: float = 0.99  # discount
    seed: int = 0
    num_workers: int = 1  # rollout workers
    # -- from RunSpec.hyperparameters --
    hidden: tuple[int, ...] = (256, 256)  # MLP widths
    envs_per_worker: int = 1  # sub-environments each rollout worker steps together
    learning_starts: int = 1000  # transitions collected before the first update
    samples_per_insert: float = 8.0  # replay ratio; Mnih et al. 2015: batch 32 every 4 steps
    n_step: int = (
        1  # env steps per transition's return (actors/algorithms/nstep.py); 1: one-step DQN
    )
    double_q: bool = True  # Double DQN's target; False: the plain max over the target net
    rate_error_buffer: float | None = None  # limiter slack, samples; >= one call each side
    target_update_interval: int = 1000  # updates between target-network refreshes
    tau: float = 1.0  # refresh weight: 1 copies the online net, < 1 is Polyak averaging
    max_grad_norm: float = 10.0  # global gradient-norm clip (stable-baselines3's default)
    exploration: Literal["linear", "apex"] = "linear"  # see actors/algorithms/explore.py
    exploration_initial_eps: float = 1.0  # linear: epsilon at step 0
    exploration_final_eps: float = 0.05  # linear: epsilon after the anneal
    exploration_fraction: float = 0.1  # linear: share of the budget spent annealing
    exploration_budget_steps: int = 100_000  # linear: the run's env-step budget
    apex_epsilon: float = APEX_EPSILON  # apex: base epsilon
    apex_alpha: float = APEX_ALPHA  # apex: spread exponent
    weights_publish_interval: int = 10  # updates between policy weights sent to actors
    eval_interval_updates: int = 1000  # updates between greedy evaluations
    eval_episodes: int = 10  # episodes per evaluation
    # -- from RunSpec.policy --
    policy: PolicyRef | None = None  # a custom Q-network (actors/networks/custom.py); None: MLP

    @classmethod
    def from_spec(cls, spec: RunSpec) -> DQNConfig:
        """The spec's fields plus its `hyperparameters` over the defaults above. An
        unknown or invalid hyperparameter is a ValueError that names it."""
        if spec.algorithm.lower() != "dqn":
            raise ValueError(f"algorithm: expected 'dqn', got {spec.algorithm!r}")
        tunable = {f.name for f in dataclasses.fields(cls)} - set(SPEC_FIELDS) - {"policy"}
        for key in spec.hyperparameters:
            if key in (*SPEC_FIELDS, "policy"):
                raise ValueError(f"hyperparameters.{key}: set it as the run's own field")
            if key not in tunable:
                raise ValueError(f"hyperparameters.{key}: unknown DQN hyperparameter")
        values = {name: getattr(spec, name) for name in SPEC_FIELDS} | spec.hyperparameters
        values["policy"] = spec.policy
        try:
            config = TypeAdapter(cls).validate_python(values)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"hyperparameters.{where}: {first['msg']}") from None
        config.check()
        return config

    def check(self) -> None:
        positive = ("batch_size", "buffer_size", "num_workers", "envs_per_worker")
        positive += ("target_update_interval", "weights_publish_interval")
        positive += ("eval_interval_updates", "eval_episodes", "learning_starts", "n_step")
        for name in positive:
            if getattr(self, name) < 1:
                where = name if name in SPEC_FIELDS else f"hyperparameters.{name}"
                raise ValueError(f"{where}: must be at least 1")
        if self.samples_per_insert <= 0:
            raise ValueError("hyperparameters.samples_per_insert: must be positive")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError("hyperparameters.tau: must be in (0, 1]")
        if self.learning_starts > self.buffer_size:
            raise ValueError("hyperparameters.learning_starts: larger than buffer_size")
        try:
            self.exploration_schedule()
        except ValueError as exc:
            raise ValueError(f"hyperparameters.exploration: {exc}") from None

    @property
    def num_actors(self) -> int:
        return self.num_workers * self.envs_per_worker

    @property
    def replay_ratio(self) -> float:
        """Sampled per inserted transition."""
        return self.samples_per_insert

    def rate_limiter(self, insert_chunk: int) -> RateLimiter:
        """The replay rate limiter, for inserts of `insert_chunk` transitions at a time."""
        minimum = (self.batch_size + insert_chunk * self.samples_per_insert) / 2
        error_buffer = max(self.rate_error_buffer or minimum, minimum, 1.0)
        return RateLimiter(self.samples_per_insert, self.learning_starts, error_buffer)

    def exploration_schedule(self) -> EpsilonSchedule:
        return make_exploration(
            self.exploration,
            self.num_actors,
            initial_eps=self.exploration_initial_eps,
            final_eps=self.exploration_final_eps,
            fraction=self.exploration_fraction,
            budget_steps=self.exploration_budget_steps,
            apex_epsilon=self.apex_epsilon,
            apex_alpha=self.apex_alpha,
        )


def double_dqn_target(
    reward: torch.Tensor,
    terminated: torch.Tensor,
    discount: float | torch.Tensor,
    next_q_online: torch.Tensor,
    next_q_target: torch.Tensor,
    double: bool = True,
) -> torch.Tensor:
    """r + discount * (1 - terminated) * Q_target(s', argmax_a Q_online(s', a)).

    The online net picks the next action, the target net values it (van Hasselt et al.
    2016), which curbs the overestimation of taking a max over noisy estimates. With
    `double` False (`double_q: false`) the target net picks it too: the plain
    max_a Q_target(s', a) of Mnih et al. 2015, as stable-baselines3's DQN. For an
    n-step transition r is its discounted reward sum, s' the state `horizon` steps on,
    and `discount` gamma ** horizon, per transition (`n_step_discounts`)."""
    chooser = next_q_online if double else next_q_target
    next_action = chooser.argmax(dim=1, keepdim=True)
    next_value = next_q_target.gather(1, next_action).squeeze(1)
    not_terminal = 1.0 - terminated.float()
    return reward + discount * not_terminal * next_value


def n_step_discounts(gamma: float, n_step: int) -> torch.Tensor:
    """gamma ** h for h = 0..n_step, to index with transitions' horizons."""
    return gamma ** torch.arange(n_step + 1, dtype=torch.float64).to(torch.float32)


class TorchQUpdate:
    """The DQN update for any Q-network, through torch autograd: the Double-DQN (or
    plain-max) target, Huber loss, gradient-norm clipping, Adam and the target refresh.
    runt's own MLP trains through `actors.algorithms.qmlp.NumpyQUpdate` instead: the same
    update without torch's fixed cost per operation, which outweighs such small layers."""

    def __init__(self, online: torch.nn.Module, target: torch.nn.Module, config: DQNConfig):
        self.config = config
        self.online, self.target = online, target
        self.online_params = list(online.parameters())
        self.target_params = list(target.parameters())
        self.discounts = n_step_discounts(config.gamma, config.n_step)
        # fused: one kernel for all parameters instead of several per parameter
        self.optimizer = torch.optim.Adam(self.online_params, lr=config.learning_rate, fused=True)

    def update(self, batch: Transition, refresh_target: bool) -> dict[str, float]:
        obs = torch.as_tensor(batch.obs)
        actions = torch.as_tensor(batch.action, dtype=torch.int64).unsqueeze(1)
        rewards = torch.as_tensor(batch.reward, dtype=torch.float32)
        next_obs = torch.as_tensor(batch.next_obs)
        terminated = torch.as_tensor(batch.terminated)
        discount = self.discounts[torch.as_tensor(batch.horizon)]
        with torch.no_grad():
            td_target = double_dqn_target(
                rewards,
                terminated,
                discount,
                self.online(next_obs),
                self.target(next_obs),
                double=self.config.double_q,
            )
        q_taken = self.online(obs).gather(1, actions).squeeze(1)
        td_loss = F.smooth_l1_loss(q_taken, td_target)
        self.optimizer.zero_grad()
        td_loss.backward()
        grad_norm = self._clip_gradients()
        adam_step(self.optimizer)
        if refresh_target:
            self._refresh_target()
        return {
            "losses/td_loss": td_loss.item(),
            "losses/q_mean": q_taken.detach().mean().item(),
            "losses/td_target_mean": td_target.mean().item(),
            "losses/grad_norm": grad_norm.item(),
        }

    @torch.no_grad()
    def _clip_gradients(self) -> torch.Tensor:
        """clip_grad_norm_ without its grouping by device and dtype (one CPU group here):
        scale every gradient by min(1, max_norm / (global norm + 1e-6))."""
        grads = [param.grad for param in self.online_params]
        total_norm = torch.linalg.vector_norm(torch.cat([grad.reshape(-1) for grad in grads]))
        scale = (self.config.max_grad_norm / (total_norm + 1e-6)).clamp_(max=1.0)
        for grad in grads:
            grad.mul_(scale)
        return total_norm

    @torch.no_grad()
    def _refresh_target(self) -> None:
        """target <- tau * online + (1 - tau) * target; tau = 1 is a plain copy."""
        torch._foreach_lerp_(self.target_params, self.online_params, self.config.tau)

    def optimizer_state(self) -> dict[str, torch.Tensor]:
        """Adam's state per parameter, as `<index>.<name>` (empty before the first step)."""
        flat = {}
        for index, param_state in self.optimizer.state_dict()["state"].items():
            flat |= {f"{index}.{k}": v.clone() for k, v in param_state.items()}
        return flat

    def load_optimizer_state(self, state: dict[str, torch.Tensor]) -> None:
        per_param: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in state.items():
            index, name = key.split(".", 1)
            per_param.setdefault(int(index), {})[name] = value.clone()
        param_groups = self.optimizer.state_dict()["param_groups"]
        self.optimizer.load_state_dict({"state": per_param, "param_groups": param_groups})


class DQNLearner:
    """Double DQN with a target network, Huber loss, Adam and gradient-norm clipping.

    The networks are torch modules (policy weights, checkpoints and exports are theirs);
    the update is `NumpyQUpdate` for runt's MLP, on the modules' own parameters, and
    `TorchQUpdate` for a custom network."""

    def __init__(self, config: DQNConfig, spaces: EnvSpaces, seed: int | None = None):
        self.config = config
        seed = config.seed if seed is None else seed
        self.q_network = build_q_network(spaces, config.hidden, seed, config.policy)
        self.target_network = copy.deepcopy(self.q_network).requires_grad_(False)
        kind = NumpyQUpdate if isinstance(self.q_network, QNetwork) else TorchQUpdate
        self.step: NumpyQUpdate | TorchQUpdate = kind(self.q_network, self.target_network, config)
        self.updates = 0

    def update(self, batch: Transition) -> dict[str, float]:
        self.updates += 1
        refresh = self.updates % self.config.target_update_interval == 0
        return self.step.update(batch, refresh_target=refresh)

    def network_meta(self) -> dict[str, Any]:
        return self.q_network.network_meta()

    def policy_state(self) -> dict[str, torch.Tensor]:
        """The online network's weights: what rollout workers load into `QPolicy`."""
        return {name: t.detach().clone() for name, t in self.q_network.state_dict().items()}

    def state(self) -> dict[str, torch.Tensor]:
        """Networks, optimiser state and counters as one flat dict of tensors."""
        flat = {f"q_network.{k}": v.clone() for k, v in self.q_network.state_dict().items()}
        flat |= {
            f"target_network.{k}": v.clone() for k, v in self.target_network.state_dict().items()
        }
        flat |= {f"optimizer.{k}": v for k, v in self.step.optimizer_state().items()}
        flat["counters.updates"] = torch.tensor(self.updates, dtype=torch.int64)
        return flat

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what `state()` returned (optimiser hyperparameters come from config)."""
        self.q_network.load_state_dict(_section(state, "q_network."))
        self.target_network.load_state_dict(_section(state, "target_network."))
        self.step.load_optimizer_state(_section(state, "optimizer."))
        self.updates = int(state["counters.updates"])


def adam_step(optimizer: torch.optim.Adam) -> None:
    """`optimizer.step()` for a fused Adam with one parameter group and no weight decay
    or amsgrad, calling the fused kernel directly: torch.optim's per-call work (hooks,
    profiler record, regrouping the state into lists) costs more than the kernel for a
    small network. The same arithmetic on the same state tensors, so
    checkpoints and `load_state` do not change. The first step (which creates the
    state) and any other configuration go through `optimizer.step()`."""
    group = optimizer.param_groups[0]
    params = group["params"]
    direct = (
        len(optimizer.param_groups) == 1
        and group.get("fused")
        and not (group["amsgrad"] or group["maximize"] or group["weight_decay"])
        and not isinstance(group["lr"], torch.Tensor)
        and all(param in optimizer.state for param in params)
    )
    if not direct:
        optimizer.step()
        return
    states = [optimizer.state[param] for param in params]
    steps = [state["step"] for state in states]
    torch._foreach_add_(steps, 1)
    beta1, beta2 = group["betas"]
    torch._fused_adam_(
        params,
        [param.grad for param in params],
        [state["exp_avg"] for state in states],
        [state["exp_avg_sq"] for state in states],
        [],
        steps,
        amsgrad=False,
        lr=group["lr"],
        beta1=beta1,
        beta2=beta2,
        weight_decay=0.0,
        eps=group["eps"],
        maximize=False,
    )


def _section(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


class QPolicy:
    """Epsilon-greedy over a Q-network: batched inference for rollout and evaluation."""

    def __init__(self, network: QNetwork | CustomQNetwork):
        self.network = network.eval().requires_grad_(False)
        self.n_actions = network.n_actions
        # runt's MLP acts through NumPy, on the module's own parameters (actors/algorithms/qmlp.py)
        self.numpy_mlp = NumpyMLP(network) if isinstance(network, QNetwork) else None

    @classmethod
    def from_spaces(
        cls,
        spaces: EnvSpaces,
        hidden: Sequence[int],
        seed: int | None = None,
        policy: PolicyRef | None = None,
    ) -> QPolicy:
        """With the run seed this is the same version-0 policy the learner starts from."""
        return cls(build_q_network(spaces, hidden, seed, policy))

    @classmethod
    def from_meta(cls, meta: dict[str, Any], policy_state: dict[str, torch.Tensor]) -> QPolicy:
        policy = cls(network_from_meta(meta))
        policy.load(policy_state)
        return policy

    def load(self, policy_state: dict[str, torch.Tensor]) -> None:
        self.network.load_state_dict(policy_state)

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        if self.numpy_mlp is not None:
            return self.numpy_mlp.greedy(obs)
        with torch.inference_mode():
            q_values = self.network(torch.as_tensor(obs))
        return q_values.argmax(dim=1).numpy()

    def act(
        self, obs: np.ndarray, epsilons: np.ndarray | float, rng: np.random.Generator
    ) -> np.ndarray:
        """One action per row of `obs`: random with probability epsilon, else greedy."""
        greedy_actions = self.greedy(obs)
        explore = rng.random(len(obs)) < epsilons
        random_actions = rng.integers(self.n_actions, size=len(obs))
        return np.where(explore, random_actions, greedy_actions)


class GreedyQ(torch.nn.Module):
    """A Q-network that answers with the greedy action: what `runt export` writes."""

    def __init__(self, network: QNetwork | CustomQNetwork):
        super().__init__()
        self.network = network

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.network(obs).argmax(dim=1)


def epsilon_greedy_collector(
    config: DQNConfig,
    policy: QPolicy,
    vector: VectorCollector,
    worker: int,
    rng: np.random.Generator,
) -> TransitionCollector:
    """Transitions with this worker's epsilons after the run's env steps so far; n-step
    ones when the run's `n_step` is above 1."""
    schedule = config.exploration_schedule()
    actors = actor_ids(worker, config.envs_per_worker)

    def choose(obs: np.ndarray, run_steps: int) -> np.ndarray:
        return policy.act(obs, schedule.epsilons(actors, run_steps), rng)

    nstep = NStepTransitions(config.n_step, config.gamma) if config.n_step > 1 else None
    return TransitionCollector(vector, choose, nstep=nstep)


DQN = Algorithm(
    name="dqn",
    config=DQNConfig,
    buffer="replay",
    action_kinds=("discrete",),
    make_learner=lambda config, shape, seed: DQNLearner(config, shape.spaces, seed),
    make_policy=lambda config, shape, seed: QPolicy.from_spaces(
        shape.spaces, config.hidden, seed, config.policy
    ),
    make_collector=epsilon_greedy_collector,
    policy_from_meta=QPolicy.from_meta,
    policy_prefix="q_network.",
    acting_policy=lambda policy: policy,  # QPolicy acts epsilon-greedily itself
    greedy_module=lambda policy: GreedyQ(policy.network),
)
