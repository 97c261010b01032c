"""The trainer (actors/roles/trainer.py): `KeptStates`, the learner states it keeps for
evaluation requests; a run that reaches `stop_reward` keeps the evaluated state as its
final checkpoint though the trainer went on learning meanwhile; a resumed run goes on
from its checkpoint's version."""

from __future__ import annotations

from actors.algorithms.evaluate import evaluate
from actors.export.checkpoints import loaded_policy
from actors.roles.trainer import KeptStates
from schemas.messages import ResumeFrom
from tests.actors.helpers import PPO_SMALL, run_in_process, spec_for


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ---- the states kept for evaluation ----------------------------------------------------------


def test_the_state_being_evaluated_is_kept_however_many_requests_follow_it():
    """The evaluator plays one request at a time and takes the newest queued one next.
    A slow evaluation must not cost the trainer the state it is playing: while the kept
    states are at the limit, no request is sent (instead of the oldest being dropped)."""
    clock = FakeClock()
    kept = KeptStates(limit=4, stall_s=30.0, clock=clock)
    sent = []
    for updates in range(250, 250 * 21, 250):  # 20 requests during one long evaluation
        clock.now += 0.1
        if kept.offer(updates, 2 * updates, lambda u=updates: {"at": u}):
            sent.append(updates)
    assert sent == [250, 500, 750, 1000]  # the evaluator took 250; 1000 is queued
    assert kept.answered(250) == (500, {"at": 250})
    # The evaluator now plays 1000, the queued request; 500 and 750 were dropped unplayed
    # but stay until a later answer clears them. There is room to ask again.
    assert len(kept) == 3 and kept.offer(5250, 10500, lambda: {"at": 5250})
    assert kept.answered(1000) == (2000, {"at": 1000}) and len(kept) == 1
    assert kept.answered(5250) == (10500, {"at": 5250}) and len(kept) == 0


def test_a_request_nobody_answers_is_given_up_after_the_stall_time():
    """An evaluator that died while playing, with nothing queued, would otherwise leave
    the trainer never asking again."""
    clock = FakeClock()
    kept = KeptStates(limit=2, stall_s=30.0, clock=clock)
    assert kept.offer(250, 500, dict) and kept.offer(500, 1000, dict)
    clock.now = 29.0
    assert not kept.offer(750, 1500, dict)
    clock.now = 31.0
    assert kept.offer(1000, 2000, dict)  # the oldest (250) went
    assert kept.answered(250) is None  # answered after all: too late, but no error
    assert kept.answered(1000) == (2000, {})


def test_an_answer_to_a_request_not_kept_finds_nothing():
    kept = KeptStates(limit=8)
    assert kept.offer(1000, 2000, dict)
    assert kept.answered(750) is None  # e.g. a request of an earlier trainer
    assert kept.answered(1000) == (2000, {})


# ---- runs over the in-process broker ---------------------------------------------------------


def test_a_solved_run_keeps_the_evaluated_state_as_its_final_checkpoint():
    stop_reward = 60.0  # well above an untrained greedy CartPole policy (~10)
    spec = spec_for(
        "dqn",
        "CartPole-v1",
        target_episode=3000,
        stop_reward=stop_reward,
        learning_rate=2.3e-3,
        batch_size=64,
        hyperparameters={
            "hidden": [32],
            "learning_starts": 500,
            "samples_per_insert": 16,
            "eval_interval_updates": 50,
            "eval_episodes": 5,
            "exploration_fraction": 0.1,
            "exploration_budget_steps": 20_000,
        },
    )
    events = run_in_process(spec, timeout=240)
    done = [e for e in events if e.type == "status" and e.status == "completed"]
    assert done and "reached stop_reward" in done[0].reason, [
        e for e in events if e.type == "status"
    ]
    solved = next(e for e in events if e.type == "evaluation" and e.mean_return >= stop_reward)
    final = [e for e in events if e.type == "checkpoint"][-1]
    assert final.final
    assert final.version == final.meta["updates"] == solved.updates
    assert final.env_steps == solved.env_steps
    # The stored policy is the one that scored: played on the evaluation's seed, it
    # scores the same again.
    replayed = evaluate(
        loaded_policy(final.meta, final.weights),
        "CartPole-v1",
        {},
        solved.episodes,
        seed=spec.seed + 7 + solved.updates,
    )
    assert replayed.mean == solved.mean_return


def test_a_resumed_ppo_run_continues_the_versions_of_its_checkpoint():
    spec = spec_for("ppo", "CartPole-v1", target_episode=20, hyperparameters=PPO_SMALL)
    first = run_in_process(spec)
    final = [e for e in first if e.type == "checkpoint"][-1]
    updates = final.meta["updates"]
    assert updates > 0

    resume = ResumeFrom(model_id=1, version=final.version, env_steps=final.env_steps)
    resumed_spec = spec.model_copy(update={"run_id": 2, "resume": resume})
    events = run_in_process(resumed_spec, resume_state=final.weights)
    versions = [e.policy_version for e in events if e.type == "episode"]
    assert versions and min(versions) >= updates  # workers acted with the restored policy
    metrics = [e.values for e in events if e.type == "metrics"][-1]
    assert metrics["charts/updates"] > updates and metrics["buffer/stale_segments"] == 0
