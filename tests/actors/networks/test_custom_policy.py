"""Custom networks named by dotted path (`policy: {path, kwargs}`, actors/networks/custom.py,
the shipped ones in actors/networks/mlp.py): the allow-list (actors/settings.py), the
per-algorithm contract, checks at POST /train/, rebuilding from checkpoints, and a short
training run with one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actors.algorithms.evaluate import evaluate
from actors.algorithms.serial import SerialRun
from actors.algorithms.table import ALGORITHMS
from actors.algorithms.validate import check_spec
from actors.envs.build import EnvError, make_env
from actors.export.checkpoints import policy_from_checkpoint, torchscript
from actors.networks.custom import PolicyError, split_path
from actors.networks.mlp import DuelingQNetwork, MLPTorso
from actors.settings import allowing, module_allowed
from schemas.messages import PolicyRef, RunSpec
from tests.actors.helpers import checkpoint_of, learner_for, run_in_process, spec_for
from tests.conftest import Api, make_config
from tests.custom_nets import ENV_ID as TEST_ENV_ID

TEST_MODULES = ("actors.networks", "tests.custom_nets")
DUELING = {"path": "actors.networks:DuelingQNetwork", "kwargs": {"hidden": [32]}}
TORSO = {"path": "actors.networks.MLPTorso", "kwargs": {"hidden": [32], "layer_norm": True}}


# ---- the allow-list ------------------------------------------------------------------------


def test_a_prefix_allows_its_module_and_submodules_only():
    prefixes = ("actors.networks", "mylab")
    assert module_allowed("actors.networks", prefixes)
    assert module_allowed("mylab.nets.conv", prefixes)
    assert not module_allowed("actors.networksx", prefixes)
    assert not module_allowed("actors", prefixes)
    assert not module_allowed("os", prefixes)
    assert split_path("a.b:C") == split_path("a.b.C") == ("a.b", "C")


def test_the_default_allow_list_is_runts_own_networks():
    spec = spec_for("dqn", "CartPole-v1", policy={"path": "tests.custom_nets:OneTooManyQ"})
    with pytest.raises(ValueError, match=r"^policy\.path: module 'tests\.custom_nets' is not"):
        check_spec(spec)
    with pytest.raises(ValueError, match=r"^policy\.path: module 'os' is not under"):
        check_spec(spec_for("dqn", "CartPole-v1", policy={"path": "os:system"}))


def test_actors_refuse_a_module_their_own_allow_list_does_not_hold():
    """A spec that reached an actor some other way is held to the actor's config too."""
    learner = _learner("ppo", "CartPole-v1", {"path": "tests.custom_nets:GatedTorso"})
    meta, weights = checkpoint_of("ppo", "CartPole-v1", learner)
    with pytest.raises(PolicyError, match=r"not under training\.allowed_modules"):
        policy_from_checkpoint(meta, weights)


def test_module_env_ids_are_made_only_from_allowed_modules():
    spec = spec_for("dqn", f"tests.custom_nets:{TEST_ENV_ID}")
    with pytest.raises(ValueError, match=r"^env_id: .* names the module 'tests.custom_nets'"):
        check_spec(spec)
    with pytest.raises(EnvError, match="not under allowed_modules"):
        make_env(f"os:{TEST_ENV_ID}")
    check_spec(spec, allowed_modules=TEST_MODULES)  # allowed: made and accepted


# ---- the contract, checked as POST /train/ checks it ---------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "env_id", "policy"),
    [
        ("dqn", "CartPole-v1", DUELING),
        ("dqn", "CartPole-v1", {"path": "actors.networks:QNetwork", "kwargs": {"hidden": [8]}}),
        ("ppo", "CartPole-v1", TORSO),
        ("ppo", "Pendulum-v1", {"path": "actors.networks:MLPTorso"}),
        ("sac", "Pendulum-v1", {"path": "actors.networks:MLPTorso", "kwargs": {"hidden": [16]}}),
    ],
)
def test_shipped_networks_fit_their_algorithms(algorithm, env_id, policy):
    check_spec(spec_for(algorithm, env_id, policy=policy))


@pytest.mark.parametrize(
    ("algorithm", "env_id", "policy", "error"),
    [
        ("dqn", "CartPole-v1", {"path": "actors.networks:Missing"}, "policy.path: 'actors"),
        ("dqn", "CartPole-v1", {"path": "tests.custom_nets:NOT_A_MODULE"}, "policy.path: 'tests"),
        ("dqn", "CartPole-v1", {"path": "tests.custom_nets.no:Net"}, "policy.path: cannot import"),
        ("dqn", "CartPole-v1", {"path": "tests.custom_nets:OneTooManyQ"}, "policy.path: returns 3"),
        ("dqn", "CartPole-v1", {"path": "actors.networks:MLPTorso"}, "policy.path: MLPTorso(4, 2)"),
        ("ppo", "CartPole-v1", {"path": "tests.custom_nets:FlatTorso"}, "policy.path: returns ()"),
        ("ppo", "CartPole-v1", {"path": "tests.custom_nets:BrokenTorso"}, "policy.path: forward"),
        (
            "sac",
            "Pendulum-v1",
            {"path": "tests.custom_nets:BrokenTorso", "kwargs": {"width": 4}},
            "policy.kwargs: forward pass",
        ),
        (
            "ppo",
            "CartPole-v1",
            {"path": "actors.networks:MLPTorso", "kwargs": {"activation": "swish"}},
            "policy.kwargs: MLPTorso(4, **kwargs) failed: ValueError: activation must be",
        ),
        (
            "sac",
            "Pendulum-v1",
            {"path": "actors.networks:DuelingQNetwork"},
            "policy.path: DuelingQNetwork(3) failed: TypeError",
        ),
    ],
)
def test_networks_that_do_not_fit_are_errors_naming_the_field(algorithm, env_id, policy, error):
    with pytest.raises(ValueError) as caught:
        check_spec(spec_for(algorithm, env_id, policy=policy), allowed_modules=TEST_MODULES)
    assert str(caught.value).startswith(error), str(caught.value)


def test_policy_is_a_run_field_not_a_hyperparameter():
    spec = spec_for("ppo", "CartPole-v1", hyperparameters={"policy": TORSO})
    with pytest.raises(ValueError, match=r"^hyperparameters\.policy: set it as the run's own"):
        check_spec(spec)


# ---- building, seeding, checkpoints --------------------------------------------------------


def _learner(algorithm: str, env_id: str, policy: dict, seed: int = 5):
    with allowing(TEST_MODULES):
        return learner_for(algorithm, env_id, seed, policy=policy)


def test_the_same_seed_builds_the_same_custom_network():
    first = _learner("dqn", "CartPole-v1", DUELING).policy_state()
    second = _learner("dqn", "CartPole-v1", DUELING).policy_state()
    other = _learner("dqn", "CartPole-v1", DUELING, seed=6).policy_state()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    assert any("advantage" in k for k in first)  # the dueling network's own layers


def test_a_dueling_network_centres_its_advantages():
    network = DuelingQNetwork(4, 3, hidden=(8,))
    obs = torch.randn(5, 4)
    features = network.body(obs)
    q = network(obs)
    np.testing.assert_allclose(
        q.mean(dim=1).detach(), network.value(features).squeeze(1).detach(), atol=1e-6
    )
    assert len([m for m in MLPTorso(4, (8, 8), layer_norm=True).modules() if "Norm" in str(m)])


@pytest.mark.parametrize(
    ("algorithm", "env_id", "policy"),
    [
        ("dqn", "CartPole-v1", DUELING),
        ("ppo", "CartPole-v1", TORSO),
        ("ppo", "Pendulum-v1", {"path": "tests.custom_nets:GatedTorso"}),
        ("sac", "Pendulum-v1", {"path": "tests.custom_nets:GatedTorso", "kwargs": {"width": 8}}),
    ],
)
def test_checkpoints_of_custom_networks_act_and_export(algorithm, env_id, policy):
    """Inference and export rebuild the network from the checkpoint's meta alone; one
    TorchScript cannot compile is traced."""
    learner = _learner(algorithm, env_id, policy)
    meta, weights = checkpoint_of(algorithm, env_id, learner)
    assert meta["network"]["policy"] == PolicyRef.model_validate(policy).model_dump()
    obs = np.random.default_rng(0).normal(size=(6, meta["network"]["obs_dim"]))
    obs = obs.astype(np.float32)
    with allowing(TEST_MODULES):
        expected = ALGORITHMS[algorithm].policy_from_meta(
            learner.network_meta(), learner.policy_state()
        )
        loaded = policy_from_checkpoint(meta, weights)
        exported = torchscript(meta, weights)
    np.testing.assert_allclose(loaded.greedy(obs), expected.greedy(obs), rtol=1e-6)
    np.testing.assert_allclose(
        exported(torch.as_tensor(obs)).numpy(), expected.greedy(obs), rtol=1e-5, atol=1e-6
    )


# ---- training with one ---------------------------------------------------------------------


def test_a_run_over_the_broker_trains_and_checkpoints_a_custom_network():
    """Trainer, buffer and two workers (threads, in-process broker) build the same
    custom torso from the spec; the final checkpoint describes it."""
    spec = spec_for(
        "ppo",
        "CartPole-v1",
        num_workers=2,
        target_episode=30,
        policy=TORSO,
        hyperparameters={"n_steps": 32, "envs_per_worker": 2, "n_epochs": 2},
    )
    events = run_in_process(spec)
    assert any(e.type == "status" and e.status == "completed" for e in events)
    final = [e for e in events if e.type == "checkpoint"][-1]
    assert final.final and final.meta["network"]["policy"]["path"] == TORSO["path"]
    assert final.meta["updates"] > 0
    policy = policy_from_checkpoint(final.meta, final.weights)
    assert policy.greedy(np.zeros((3, 4), np.float32)).shape == (3,)


def test_ppo_with_a_custom_torso_learns_cartpole_in_one_process():
    """Serial PPO with a LayerNorm torso: after 16k env steps the greedy policy is far
    above random (~22). Measured: 500 (seed 0) in about 8 s."""
    spec = RunSpec(
        run_id=1,
        algorithm="ppo",
        env_id="CartPole-v1",
        learning_rate=1e-3,
        batch_size=64,
        buffer_size=1,
        gamma=0.99,
        seed=0,
        num_workers=1,
        target_episode=10**6,
        policy=TORSO,
        hyperparameters={"n_steps": 128, "envs_per_worker": 8, "n_epochs": 4},
    )
    run = SerialRun(spec)
    result = run.run(max_env_steps=16_384, time_limit_s=60)
    assert result.env_steps >= 8_192, result.stop_reason  # a busy machine may cut it
    run.eval_policy.load(run.learner.policy_state())
    score = evaluate(run.eval_policy, "CartPole-v1", {}, 10, seed=123)
    print(f"\nPPO + MLPTorso: greedy {score.mean:.0f} after {result.env_steps} env steps")
    assert score.mean >= 150, score


# ---- POST /train/ ---------------------------------------------------------------------------


@pytest.fixture
def config(db_url):
    """The service allows the test networks' module, as an administrator would."""
    return make_config(db_url, training={"allowed_modules": list(TEST_MODULES)})


RUN = {"algorithm": "ppo", "env_id": "CartPole-v1", "target_episode": 5}


async def test_train_stores_the_policy_and_shows_it(alice: Api):
    status, body = await alice.post("/train/", json={**RUN, "policy": TORSO})
    assert status == 201, body
    _, answer = await alice.get(f"/models/{body['id']}/")
    assert answer["data"]["policy"] == TORSO


async def test_train_accepts_a_bare_path_in_a_form(alice: Api):
    form = {**RUN, "target_episode": "5", "policy": "tests.custom_nets:GatedTorso"}
    status, body = await alice.post("/train/", data=form)
    assert status == 201, body


@pytest.mark.parametrize(
    ("policy", "field", "says"),
    [
        ({"path": "os:system"}, "policy.path", "module 'os' is not under"),
        ({"path": "not a path"}, "policy.path", "String should match pattern"),
        ({"path": "actors.networks:MLPTorso", "kwargs": [1]}, "policy.kwargs", "valid dict"),
        ({"path": "actors.networks:MLPTorso", "kwargs": {"x": 1}}, "policy.kwargs", "unexpected"),
        ({"path": "tests.custom_nets:FlatTorso"}, "policy.path", "returns ()"),
        ({"kwargs": {}}, "policy.path", "Field required"),
    ],
)
async def test_bad_policies_are_400s_naming_the_field(alice: Api, policy, field, says):
    status, answer = await alice.post("/train/", json={**RUN, "policy": policy})
    assert status == 400, answer
    assert answer["data"]["field"] == field
    assert answer["message"].startswith(f"{field}:") and says in answer["message"], answer


async def test_a_module_env_id_is_a_400_unless_allowed(alice: Api):
    status, answer = await alice.post("/train/", json={**RUN, "env_id": "os:CartPole-v1"})
    assert status == 400 and answer["data"]["field"] == "env_id", answer
    allowed = {**RUN, "algorithm": "dqn", "env_id": f"tests.custom_nets:{TEST_ENV_ID}"}
    status, answer = await alice.post("/train/", json=allowed)
    assert status == 201, answer


def test_a_yaml_run_file_carries_policy_and_sinks(tmp_path):
    """`runt train FILE.yaml` posts the file's mapping as it is."""
    from cli.client import load_run_file
    from schemas.api import TrainRequest

    run_file = tmp_path / "run.yaml"
    run_file.write_text(
        "algorithm: ppo\nenv_id: CartPole-v1\ntarget_episode: 50\n"
        "policy:\n  path: actors.networks:MLPTorso\n  kwargs: {hidden: [32], layer_norm: true}\n"
        "metric_sinks: {tensorboard: true}\n"
    )
    request = TrainRequest.model_validate(load_run_file(run_file))
    assert request.policy == PolicyRef(
        path=TORSO["path"].replace(".MLP", ":MLP"),
        kwargs={
            "hidden": [32],
            "layer_norm": True,
        },
    )
    assert request.metric_sinks.tensorboard and request.metric_sinks.wandb is None
