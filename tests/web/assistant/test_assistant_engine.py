"""The training assistant's engine, pure: canned runs in, specific findings and values out."""

from __future__ import annotations

import inspect
import string
from typing import Any

import numpy as np
import pytest

from actors.algorithms import table
from tests.web.helpers import (
    PRESET,
    SHORT_REWARDS,
    collapsing_rewards,
    diverging_metrics,
    exhausted_metrics,
    plateau_rewards,
    solved_rewards,
)
from web.assistant import llm, text
from web.assistant.curve import MIN_EPISODES, analyse_curve
from web.assistant.engine import advise
from web.assistant.facts import build, env_info, guess_algorithm
from web.assistant.hyper import bad_hyperparameter, round_sig
from web.assistant.ranges import RANGES
from web.assistant.records import Finding, RunFacts
from web.assistant.view import language

PRESET_HP = {
    **{k: PRESET[k] for k in ("learning_rate", "batch_size", "buffer_size", "gamma")},
    "num_workers": PRESET["num_workers"],
    **PRESET["hyperparameters"],
}


def facts(hp: dict, rewards=(), algorithm="dqn", env_id="CartPole-v1", **more) -> RunFacts:
    lengths = more.pop("lengths", tuple(int(r) for r in rewards) if env_id == "CartPole-v1" else ())
    return build(algorithm, env_id, hp, rewards=tuple(rewards), lengths=lengths, **more)


def analyse(f: RunFacts) -> dict[str, Any]:
    """Each section's findings by name, and the overview."""
    parts = list(advise(f))
    assert [p.name for p in parts] == ["overview", "hyperparameters", "strategy", "architecture"]
    return {p.name: list(p.findings) for p in parts} | {"overview": parts[0].overview}


def by_code(found: dict, code: str) -> Finding:
    matches = [f for section in SECTIONS for f in found[section] if f.code == code]
    assert len(matches) == 1, (code, found)
    return matches[0]


def codes(found: dict) -> set[str]:
    return {f.code for section in SECTIONS for f in found[section]}


SECTIONS = ("hyperparameters", "strategy", "architecture")


# ---- the four canned situations ------------------------------------------------------------


def test_diverging_loss_collapsing_curve_and_high_learning_rate():
    found = analyse(
        facts({"learning_rate": 0.05}, collapsing_rewards(), metrics=tuple(diverging_metrics()))
    )
    overview = found["overview"]
    assert overview["diverging"] and overview["exploding"]
    assert "collapse" in overview["verdicts"]

    lr = by_code(found, "range.high")
    assert (lr.section, lr.parameter, lr.current, lr.value) == (
        "hyperparameters",
        "learning_rate",
        0.05,
        0.001,
    )
    assert lr.evidence["high"] == 0.003 and "Mnih" in lr.source
    assert lr.evidence["loss_growth"] >= 90  # 0.5 -> ~46 over the last reports
    assert lr.evidence["q_abs"] == 5000 and lr.evidence["drop_from_peak"] > 0.8

    target = by_code(found, "target.unstable")  # hard copies every 1000 updates (default)
    assert (target.parameter, target.current, target.value) == (
        "target_update_interval",
        1000,
        2000,
    )

    collapse = by_code(found, "curve.collapse")
    assert (collapse.section, collapse.parameter, collapse.value) == (
        "strategy",
        "stop_reward",
        475,
    )
    assert 250 < collapse.evidence["best"] < 310 and 140 < collapse.evidence["best_episode"] < 175
    assert collapse.evidence["end"] < 80


def test_plateau_with_exhausted_exploration():
    found = analyse(facts(PRESET_HP, plateau_rewards(), metrics=tuple(exhausted_metrics())))
    assert found["overview"]["verdicts"] == ["plateau"]

    explore = by_code(found, "explore.exhausted")
    assert (explore.parameter, explore.current, explore.value) == (
        "exploration_final_eps",
        0.04,
        0.1,
    )
    assert explore.evidence["epsilon"] == 0.04
    assert explore.evidence["anneal_steps"] == 8000  # 0.16 x 50,000
    assert explore.evidence["env_steps"] == 59_000
    assert explore.evidence["flat_episodes"] >= 150

    plateau = by_code(found, "curve.plateau")
    assert (plateau.parameter, plateau.value) == ("target_episode", 300)  # stop where it is
    assert 140 < plateau.evidence["level"] < 160 and plateau.evidence["threshold"] == 475

    apex = by_code(found, "explore.apex")
    assert (apex.parameter, apex.current, apex.value) == ("exploration", "linear", "apex")
    assert apex.evidence["actors"] == 8  # 1 worker x 8 envs
    # exploration explains the plateau, so the network is not blamed
    assert by_code(found, "arch.keep").value == [64, 64]


def test_solved_curve_and_the_preset_passes_every_range():
    found = analyse(facts(PRESET_HP, solved_rewards()))
    assert found["overview"]["verdicts"] == ["solved"]
    assert found["hyperparameters"] == []  # every preset value lies in its documented range

    solved = by_code(found, "curve.solved")
    assert (solved.parameter, solved.current, solved.value) == ("stop_reward", None, 475)
    assert solved.evidence["level"] == 500 and solved.evidence["threshold"] == 475
    assert 140 < solved.evidence["solved_episode"] < 160
    assert codes(found) == {"curve.solved", "arch.keep"}

    # with stop_reward set and a greedy evaluation over the threshold: nothing to change
    kept = analyse(
        facts(PRESET_HP, solved_rewards()[:100], evaluations=(200.0, 480.0), stop_reward=475.0)
    )
    assert by_code(kept, "curve.solved_kept").evidence["eval_best"] == 480


def test_too_short_curve_is_not_judged():
    found = analyse(facts({"learning_rate": 1e-3}, SHORT_REWARDS))
    assert found["overview"]["verdicts"] == ["too_short"]
    short = by_code(found, "curve.too_short")
    assert short.evidence == {"episodes": 8, "minimum": MIN_EPISODES}
    assert (short.parameter, short.value) == ("target_episode", 100)
    assert not codes(found) & {"curve.plateau", "curve.collapse", "curve.improving"}


# ---- more of the curve ---------------------------------------------------------------------


def test_a_rising_curve_is_extrapolated_to_the_threshold():
    rewards = list(np.linspace(20, 220, 200))  # +100 per 100 episodes
    found = analyse(facts(PRESET_HP, rewards, target_episode=300))
    improving = by_code(found, "curve.improving")
    # smoothed end ~215, gap ~260 at 100/100 episodes -> ~260 more, x1.2, rounded up to 10s
    assert 300 <= improving.evidence["more_episodes"] <= 330
    assert improving.value == 200 + improving.evidence["more_episodes"]
    assert improving.current == 300


def test_a_plateau_without_an_exploration_cause_blames_a_small_network():
    hp = PRESET_HP | {"hidden": [32, 32], "exploration": "apex"}
    found = analyse(facts(hp, plateau_rewards()))
    widen = by_code(found, "arch.widen")
    assert (widen.current, widen.value) == ([32, 32], [256, 256])
    assert "explore.exhausted" not in codes(found)


def test_curve_statistics():
    report = analyse_curve(np.linspace(0, 99, 100), threshold=90.0)  # episode e earns e - 1
    assert report.window == 10 and report.episodes == 100
    assert report.slope_per_100 == pytest.approx(100.0)
    assert report.trend == "rising" and report.solved and report.solved_episode == 96
    assert analyse_curve([]) is None


# ---- hyperparameters per algorithm ----------------------------------------------------------


def test_gamma_too_short_for_the_episodes():
    found = analyse(facts({"gamma": 0.9}, [500.0] * 30))
    gamma = by_code(found, "gamma.short_horizon")
    assert gamma.evidence == {"gamma": 0.9, "horizon_steps": 10.0, "episode_length": 500}
    assert gamma.value == 0.99


def test_a_small_buffer_for_the_steps_of_the_run():
    found = analyse(facts({"buffer_size": 5000}))
    buffer = by_code(found, "buffer.small")
    assert (buffer.current, buffer.value) == (5000, 100_000)  # the default 100k-step budget


def test_ppo_checks_use_stable_baselines3_names():
    hp = {"clip_range": 0.5, "n_epochs": 50, "n_steps": 64, "batch_size": 256}
    found = analyse(facts(hp | {"learning_rate": 0.01}, algorithm=None))  # guessed from names
    assert found["overview"]["algorithm"] == "ppo"
    clip = next(f for f in found["hyperparameters"] if f.parameter == "clip_range")
    assert (clip.code, clip.value) == ("range.high", 0.2) and "Schulman" in clip.source
    epochs = next(f for f in found["hyperparameters"] if f.parameter == "n_epochs")
    assert epochs.value == 10
    batch = by_code(found, "ppo.batch_over_rollout")
    assert (batch.current, batch.value) == (256, 64)
    lr = next(f for f in found["hyperparameters"] if f.parameter == "learning_rate")
    assert lr.value == 3e-4
    assert ("algo.not_trainable" in codes(found)) == ("ppo" not in table.ALGORITHMS)


def test_sac_entropy_and_tau():
    hp = {"ent_coef": 0.9, "target_entropy": 2.0, "tau": 0.1}
    found = analyse(facts(hp, algorithm="sac", env_id="Pendulum-v1"))
    assert by_code(found, "sac.ent_coef_fixed").value == "auto"
    assert by_code(found, "sac.target_entropy_high").value == "auto"
    tau = next(f for f in found["hyperparameters"] if f.parameter == "tau")
    assert (tau.code, tau.value) == ("range.high", 0.005) and "Haarnoja" in tau.source


def test_training_system_checks():
    metrics = [
        {
            "charts/policy_lag": 150.0,
            "charts/replay_ratio": 2.0,
            "charts/env_steps_per_s": 50.0,
            "buffer/dropped": 900.0,
        }
    ] * 6
    hp = PRESET_HP | {"num_workers": 4, "envs_per_worker": 1}
    found = analyse(facts(hp, plateau_rewards(), metrics=tuple(metrics)))
    lag = by_code(found, "system.policy_lag")  # 150 versions x 10 updates
    assert lag.evidence["lag_updates"] == 1500 and (lag.current, lag.value) == (32, 16)
    replay = by_code(found, "system.replay_shortfall")  # 2 of 32: one worker would do
    assert (replay.parameter, replay.current, replay.value) == ("num_workers", 4, 1)
    slow = by_code(found, "system.slow_env")
    assert (slow.evidence["env_steps_per_s"], slow.value) == (50, 4)


def test_every_range_has_a_source_and_holds_its_typical_value():
    for ranges in RANGES.values():
        for name, rng in ranges.items():
            assert rng.low <= rng.typical <= rng.high, name
            assert rng.source, name


# ---- text ----------------------------------------------------------------------------------


ALL_CASES = [
    facts({"learning_rate": 0.05}, collapsing_rewards(), metrics=tuple(diverging_metrics())),
    facts(PRESET_HP, plateau_rewards(), metrics=tuple(exhausted_metrics())),
    facts(PRESET_HP, solved_rewards()),
    facts({"learning_rate": 1e-3}, SHORT_REWARDS),
    facts({"gamma": 0.9, "buffer_size": 10, "hidden": [16]}, list(np.linspace(0, 100, 50))),
    facts({"clip_range": 0.5, "n_steps": 8, "batch_size": 64}, algorithm="ppo"),
    facts({"ent_coef": 0.9, "target_entropy": 1.0}, algorithm="sac", env_id="Pendulum-v1"),
]


@pytest.mark.parametrize("case", ALL_CASES)
def test_every_sentence_is_filled_from_its_evidence(case):
    standard = {"parameter", "current", "value", "algorithm", "drop_pct"}
    for part in advise(case):
        for finding in part.findings:
            for template in text.MESSAGES[finding.code]:
                fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
                assert fields <= set(finding.evidence) | standard, (finding.code, fields)


def test_markdown_in_english_and_chinese():
    case = ALL_CASES[1]
    english = text.title("en", 3) + text.render(list(advise(case)), case, "en")
    assert english.startswith("# Training assistant — run 3")
    for heading in (
        "## 1. Hyperparameter adjustments",
        "## 2. Training-strategy optimisation",
        "## 3. Model-architecture improvements",
    ):
        assert heading in english
    assert "**exploration_final_eps: 0.04 → 0.1** — The curve has been flat" in english
    assert "Evidence: epsilon = 0.04, env_steps = 59000, anneal_steps = 8000" in english

    chinese = text.render(list(advise(case)), case, "zh")
    for heading in ("## 一、超参数调整", "## 二、训练策略优化", "## 三、模型结构改进"):
        assert heading in chinese
    assert "**exploration_final_eps: 0.04 → 0.1** — epsilon 已降到下限" in chinese
    assert "依据：epsilon = 0.04" in chinese  # noqa: RUF001 (Chinese punctuation)


def test_advise_is_lazy():
    """Nothing is computed until the first part is asked for (the view streams between)."""
    assert inspect.isgenerator(advise(ALL_CASES[0]))


# ---- small pieces --------------------------------------------------------------------------


def test_reward_thresholds_come_from_the_gymnasium_registry():
    assert env_info("CartPole-v1") == (475.0, 500)
    assert env_info("Pendulum-v1") == (None, 200)
    assert env_info("os:NoSuch-v0") == (None, None)  # a lookup only, nothing imported
    assert env_info(None) == (None, None)


def test_guess_algorithm_and_round_sig():
    assert guess_algorithm({"gae_lambda": 0.9}) == "ppo"
    assert guess_algorithm({"target_entropy": -1}) == "sac"
    assert guess_algorithm({"learning_rate": 0.1}) is None
    assert round_sig(0.0166666) == 0.017 and round_sig(2345.0, 2) == 2300


@pytest.mark.parametrize(
    ("hp", "problem"),
    [
        ({"learning_rate": "fast"}, "learning_rate: must be a finite number"),
        ({"gamma": True}, "gamma: must be a finite number"),
        ({"hidden": [64, "x"]}, "hidden: must be a list of positive integers (layer widths)"),
        ({"ent_coef": "auto_0.1", "learning_rate": 1e-3, "note": "free text"}, None),
    ],
)
def test_bad_hyperparameters_are_named(hp, problem):
    assert bad_hyperparameter(hp) == problem


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("en-US,en;q=0.9,zh;q=0.8", "en"),
        ("fr, zh;q=0.5", "zh"),
        ("en;q=0.2, zh-TW;q=0.7", "zh"),
        ("de", "en"),
    ],
)
def test_language_from_accept_language(header, lang):
    assert language(header) == lang


def test_llm_stream_lines():
    assert llm.parse_line(b'data: {"choices": [{"delta": {"content": "Hi"}}]}\n') == (False, "Hi")
    assert llm.parse_line(b"data: [DONE]\n") == (True, None)
    assert llm.parse_line(b": keep-alive\n") == (False, None)
    assert llm.parse_line(b'data: {"choices": [{"delta": {"role": "assistant"}}]}') == (
        False,
        None,
    )
    with pytest.raises(llm.LLMError):
        llm.parse_line(b"data: {not json")
