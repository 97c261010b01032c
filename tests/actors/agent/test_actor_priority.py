"""Actor processes run at the configured niceness (`agent.actor_nice`), on both ways an
agent starts them (actors/agent/launch.py): forked from the warm agent and as a fresh
interpreter; `lower_priority` (actors/agent/runner.py) only ever lowers it."""

from __future__ import annotations

import os
import time

import pytest

from actors.agent.launch import ActorId, ProcessLauncher
from actors.agent.runner import lower_priority
from schemas.config import load_config
from schemas.messages import RunSpec
from tests.actors.helpers import spec_for

NICE = 15

pytestmark = pytest.mark.skipif(not hasattr(os, "setpriority"), reason="no process priorities")


def spec() -> RunSpec:
    return spec_for("dqn", "CartPole-v1", seed=1, buffer_size=1000)


def niceness_of(child, timeout: float = 60.0) -> int:
    """The child's niceness once it has set it (or the last seen, at the timeout)."""
    deadline = time.monotonic() + timeout
    nice = os.getpriority(os.PRIO_PROCESS, child.pid)
    while nice != NICE and time.monotonic() < deadline and child.alive():
        time.sleep(0.05)
        nice = os.getpriority(os.PRIO_PROCESS, child.pid)
    return nice


@pytest.mark.slow
@pytest.mark.parametrize("fork", [True, False], ids=["forked", "exec"])
def test_a_started_actor_process_runs_at_the_configured_niceness(tmp_path, fork):
    if os.getpriority(os.PRIO_PROCESS, 0) >= NICE:
        pytest.skip("the tests already run at that niceness")
    env = dict(
        os.environ,
        RUNT_BROKER_URL="memory://",  # a broker of the child's own: it only has to start
        RUNT_BROKER_PREFIX="tnice",
        RUNT_AGENT_ACTOR_NICE=str(NICE),
        RUNT_LOG_LEVEL="ERROR",
    )
    launcher = ProcessLauncher("nice-test", env, str(tmp_path), fork=fork)
    child = launcher.launch(ActorId("buffer", run_id=1), spec())
    try:
        assert niceness_of(child) == NICE, child.tail()
        assert os.getpriority(os.PRIO_PROCESS, 0) < NICE, "the agent itself must not change"
    finally:
        child.terminate()
        deadline = time.monotonic() + 20
        while child.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        child.kill()
        child.reap()


def test_zero_leaves_the_priority_alone_and_a_nicer_process_stays_nicer():
    before = os.getpriority(os.PRIO_PROCESS, 0)
    lower_priority(0)
    assert os.getpriority(os.PRIO_PROCESS, 0) == before
    pid = os.fork()
    if pid == 0:  # the child: already at 19, asking for less must not fail or change it
        code = 1
        try:
            os.setpriority(os.PRIO_PROCESS, 0, 19)
            lower_priority(5)
            code = 0 if os.getpriority(os.PRIO_PROCESS, 0) == 19 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_niceness_is_a_validated_config_key():
    assert load_config(environ={}).agent.actor_nice == 10
    assert load_config(environ={"RUNT_AGENT_ACTOR_NICE": "0"}).agent.actor_nice == 0
    with pytest.raises(ValueError, match=r"agent\.actor_nice \(from RUNT_AGENT_ACTOR_NICE\)"):
        load_config(environ={"RUNT_AGENT_ACTOR_NICE": "20"})
