"""runt's own MLP Q-network (`actors.networks.QNetwork`) in NumPy: the DQN update, and
the greedy actions of rollout workers and evaluations.

For a network this small, an update or a forward pass costs the fixed price of each array
operation, which NumPy pays less of than torch (dispatch, tensor objects, autograd's
bookkeeping); tests/actors/algorithms/test_qmlp.py checks that the two agree. The
parameters stay the torch modules' own (`share_flat`), so state dicts, policy weights and
checkpoints work as on torch, and Adam's moments are laid out as torch's optimiser state, so
a checkpoint of either path restores into the other. Any other Q-network (a run's custom
`policy`) trains and acts through torch (`actors.algorithms.dqn.TorchQUpdate`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from actors.algorithms.replay import Transition

ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, as the torch path uses
ADAM_EPS = 1e-8


def share_flat(module: nn.Module) -> tuple[np.ndarray, list[np.ndarray]]:
    """Move `module`'s parameters into one flat float32 array that they then view.

    Returns the array and one view per parameter (in `parameters()` order). Writing a
    view changes the module's parameter, and `load_state_dict` writes into the views."""
    params = list(module.parameters())
    flat = np.empty(sum(param.numel() for param in params), dtype=np.float32)
    views = _views(flat, [tuple(param.shape) for param in params])
    for param, view in zip(params, views, strict=True):
        view[...] = param.detach().numpy()
        param.data = torch.from_numpy(view)
    return flat, views


def _views(flat: np.ndarray, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    views, offset = [], 0
    for shape in shapes:
        size = math.prod(shape)
        views.append(flat[offset : offset + size].reshape(shape))
        offset += size
    return views


class FlatAdam:
    """torch.optim.Adam (no weight decay, no amsgrad) on one flat parameter vector:

    m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
    p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    def __init__(self, params: np.ndarray, shapes: list[tuple[int, ...]], lr: float):
        self.params = params
        self.lr = lr
        self.exp_avg = np.zeros_like(params)
        self.exp_avg_sq = np.zeros_like(params)
        # per parameter, for torch's checkpoint layout
        self.moments = list(
            zip(_views(self.exp_avg, shapes), _views(self.exp_avg_sq, shapes), strict=True)
        )
        self.scratch = np.empty_like(params)
        self.steps = 0

    def step(self, grad: np.ndarray) -> None:
        beta1, beta2 = ADAM_BETAS
        m, v, tmp = self.exp_avg, self.exp_avg_sq, self.scratch
        self.steps += 1
        np.subtract(grad, m, out=tmp)  # m += (1 - beta1) (g - m), as torch's lerp
        tmp *= 1.0 - beta1
        m += tmp
        np.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - beta2
        v *= beta2
        v += tmp
        step_size = self.lr / (1.0 - beta1**self.steps)
        np.sqrt(v, out=tmp)
        tmp /= math.sqrt(1.0 - beta2**self.steps)
        tmp += ADAM_EPS
        np.divide(m, tmp, out=tmp)
        tmp *= step_size
        self.params -= tmp

    def state(self) -> dict[str, torch.Tensor]:
        """torch's per-parameter Adam state; empty before the first step, as torch's."""
        if not self.steps:
            return {}
        state = {}
        for index, (m, v) in enumerate(self.moments):
            state[f"{index}.step"] = torch.tensor(float(self.steps), dtype=torch.float32)
            state[f"{index}.exp_avg"] = torch.from_numpy(m.copy())
            state[f"{index}.exp_avg_sq"] = torch.from_numpy(v.copy())
        return state

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what `state()` (or torch's Adam over the same parameters) saved."""
        if not state:
            self.exp_avg[:] = 0.0
            self.exp_avg_sq[:] = 0.0
            self.steps = 0
            return
        for index, (m, v) in enumerate(self.moments):
            m[...] = state[f"{index}.exp_avg"].numpy()
            v[...] = state[f"{index}.exp_avg_sq"].numpy()
        self.steps = int(state["0.step"])


def forward(
    weights: list[np.ndarray], biases: list[np.ndarray], x: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """The MLP's Q-values of `x` (ReLU between the linear layers), and every linear
    layer's input (what backpropagation needs)."""
    inputs = []
    for weight, bias in zip(weights[:-1], biases[:-1], strict=True):
        inputs.append(x)
        x = x @ weight.T
        x += bias
        np.maximum(x, 0.0, out=x)
    inputs.append(x)
    q = x @ weights[-1].T
    q += biases[-1]
    return inputs, q


class NumpyMLP:
    """A `QNetwork` in NumPy, on the module's own parameters (`flat`, viewed as its
    `weights` and `biases`): greedy actions, for the few observations a rollout worker or
    an evaluation steps at a time, where torch's fixed cost per call is most of a forward
    pass; and the forward passes of `NumpyQUpdate`."""

    def __init__(self, network: nn.Module):
        self.flat, views = share_flat(network)
        self.weights, self.biases = views[0::2], views[1::2]

    def forward(self, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        return forward(self.weights, self.biases, x)

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs).reshape(len(obs), -1).astype(np.float32, copy=False)
        return self.forward(x)[1].argmax(axis=1)


class NumpyQUpdate:
    """The DQN update (the Double-DQN or plain-max target, Huber loss, gradient-norm clip,
    Adam, target refresh) for a `QNetwork` and its target network, in NumPy on their
    shared parameters. The same update as `actors.algorithms.dqn.TorchQUpdate`."""

    def __init__(self, online: nn.Module, target: nn.Module, config) -> None:
        self.config = config
        shapes = [tuple(param.shape) for param in online.parameters()]
        self.online_net, self.target_net = NumpyMLP(online), NumpyMLP(target)
        self.online, self.target = self.online_net.flat, self.target_net.flat
        self.grad = np.zeros_like(self.online)
        grad_views = _views(self.grad, shapes)
        self.weight_grads, self.bias_grads = grad_views[0::2], grad_views[1::2]
        self.adam = FlatAdam(self.online, shapes, config.learning_rate)
        self.discounts = (config.gamma ** np.arange(config.n_step + 1)).astype(np.float32)

    def backward(self, inputs: list[np.ndarray], grad_q: np.ndarray) -> None:
        """d(loss)/d(parameters) into `self.grad`, from the layer inputs of `forward` and
        d(loss)/d(Q-values). A ReLU's output is the next layer's input: its mask."""
        grad_out = grad_q
        weights = self.online_net.weights
        for index in range(len(weights) - 1, -1, -1):
            layer_input = inputs[index]
            np.matmul(grad_out.T, layer_input, out=self.weight_grads[index])
            np.sum(grad_out, axis=0, out=self.bias_grads[index])
            if index:
                grad_out = grad_out @ weights[index]
                grad_out *= layer_input > 0

    def update(self, batch: Transition, refresh_target: bool) -> dict[str, float]:
        size = len(batch.reward)
        rows = np.arange(size)
        obs = np.asarray(batch.obs).reshape(size, -1)
        next_obs = np.asarray(batch.next_obs).reshape(size, -1)
        both = np.concatenate((obs, next_obs)).astype(np.float32, copy=False)
        actions = np.asarray(batch.action, dtype=np.int64)

        inputs, q_values = self.online_net.forward(both)
        _, next_q_target = self.target_net.forward(both[size:])
        chooser = q_values[size:] if self.config.double_q else next_q_target
        next_value = next_q_target[rows, chooser.argmax(axis=1)]
        discount = self.discounts[np.asarray(batch.horizon)]
        not_terminal = ~np.asarray(batch.terminated, dtype=bool)
        reward = np.asarray(batch.reward, dtype=np.float32)
        td_target = reward + discount * not_terminal * next_value
        q_taken = q_values[rows, actions]

        error = q_taken - td_target  # Huber loss (smooth L1, beta 1) and its derivative
        magnitude = np.abs(error)
        td_loss = np.where(magnitude < 1.0, 0.5 * error * error, magnitude - 0.5).mean()
        grad_q = np.zeros((size, q_values.shape[1]), dtype=np.float32)
        grad_q[rows, actions] = np.clip(error, -1.0, 1.0) / size
        self.backward([x[:size] for x in inputs], grad_q)

        grad_norm = math.sqrt(float(np.dot(self.grad, self.grad)))
        scale = min(self.config.max_grad_norm / (grad_norm + 1e-6), 1.0)
        if scale < 1.0:
            self.grad *= np.float32(scale)
        self.adam.step(self.grad)
        if refresh_target:
            self.refresh_target()
        return {
            "losses/td_loss": float(td_loss),
            "losses/q_mean": float(q_taken.mean()),
            "losses/td_target_mean": float(td_target.mean()),
            "losses/grad_norm": grad_norm,
        }

    def refresh_target(self) -> None:
        """target <- tau * online + (1 - tau) * target, computed as torch's lerp does (so
        tau = 1 is an exact copy)."""
        tau = self.config.tau
        if tau < 0.5:
            self.target += np.float32(tau) * (self.online - self.target)
        else:
            self.target[:] = self.online - (self.online - self.target) * np.float32(1.0 - tau)

    def optimizer_state(self) -> dict[str, torch.Tensor]:
        return self.adam.state()

    def load_optimizer_state(self, state: dict[str, torch.Tensor]) -> None:
        self.adam.load_state(state)
