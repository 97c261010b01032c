"""Epsilon schedules (actors/algorithms/explore.py): Ape-X per-actor epsilons and linear
annealing."""

from __future__ import annotations

import numpy as np
import pytest

from actors.algorithms.explore import ApeXEpsilons, LinearEpsilon, actor_ids, make_exploration


def test_apex_epsilons_follow_horgan_et_al():
    schedule = ApeXEpsilons(num_actors=8)
    eps = schedule.epsilons(np.arange(8), env_steps=0)
    assert eps[0] == pytest.approx(0.4)
    assert eps[7] == pytest.approx(0.4**8)
    assert eps[3] == pytest.approx(0.4 ** (1 + 7 * 3 / 7))
    assert np.all(np.diff(eps) < 0)  # from exploratory to nearly greedy


def test_apex_epsilons_are_fixed_per_actor_and_a_single_actor_gets_the_base():
    schedule = ApeXEpsilons(num_actors=4, epsilon=0.5, alpha=3.0)
    actors = np.array([2, 0])
    assert np.array_equal(schedule.epsilons(actors, 0), schedule.epsilons(actors, 10**9))
    assert schedule.epsilons(actors, 0) == pytest.approx([0.5**3, 0.5])
    assert ApeXEpsilons(num_actors=1).epsilons(np.array([0]), 0) == pytest.approx([0.4])


def test_linear_epsilon_anneals_over_a_fraction_of_the_budget_then_holds():
    schedule = LinearEpsilon(start=1.0, end=0.1, fraction=0.2, budget_steps=10_000)
    assert schedule.value(0) == pytest.approx(1.0)
    assert schedule.value(1_000) == pytest.approx(0.55)
    assert schedule.value(2_000) == pytest.approx(0.1)
    assert schedule.value(9_999_999) == pytest.approx(0.1)
    assert schedule.epsilons(np.arange(3), 1_000) == pytest.approx([0.55] * 3)


def test_a_zero_fraction_starts_at_the_final_epsilon():
    assert LinearEpsilon(1.0, 0.05, 0.0, 100).value(0) == pytest.approx(0.05)


def test_factory_builds_the_named_schedule():
    apex = make_exploration("apex", num_actors=3, apex_epsilon=0.3, apex_alpha=2.0)
    assert apex.epsilons(np.arange(3), 0) == pytest.approx([0.3, 0.3**2, 0.3**3])
    linear = make_exploration("linear", 3, initial_eps=0.5, final_eps=0.1, budget_steps=100)
    assert linear.epsilons(np.arange(2), 5) == pytest.approx([0.3, 0.3])
    with pytest.raises(ValueError, match="exploration: unknown schedule 'boltzmann'"):
        make_exploration("boltzmann", 3)


def test_schedules_reject_values_outside_their_range():
    with pytest.raises(ValueError, match="end"):
        LinearEpsilon(1.0, 1.5, 0.1, 100)
    with pytest.raises(ValueError, match="budget_steps"):
        LinearEpsilon(1.0, 0.1, 0.1, 0)
    with pytest.raises(ValueError, match="num_actors"):
        ApeXEpsilons(0)


def test_actor_ids_give_each_worker_its_own_block():
    assert actor_ids(0, 3).tolist() == [0, 1, 2]
    assert actor_ids(2, 3).tolist() == [6, 7, 8]
