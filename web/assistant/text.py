"""The advice as Markdown, in English or Chinese.

Each finding's sentence comes from `MESSAGES[code]`, filled with its evidence; the
evidence itself, the suggested change and the source of a range follow it, so every
suggestion shows what triggered it and what to set instead.
"""

# The Chinese sentences use full-width punctuation, as Chinese text should.
# ruff: noqa: RUF001

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from web.assistant.records import Finding, Part, RunFacts

Lang = str  # "en" or "zh"

LABELS = {
    "en": {
        "title": "Training assistant",
        "run": "run",
        "overview": "What the run shows",
        "hyperparameters": "1. Hyperparameter adjustments",
        "strategy": "2. Training-strategy optimisation",
        "architecture": "3. Model-architecture improvements",
        "evidence": "Evidence",
        "source": "Source",
        "default": "default",
        "verdict": "Verdict",
        "colon": ": ",
    },
    "zh": {
        "title": "训练助手",
        "run": "训练任务",
        "overview": "训练概况",
        "hyperparameters": "一、超参数调整",
        "strategy": "二、训练策略优化",
        "architecture": "三、模型结构改进",
        "evidence": "依据",
        "source": "来源",
        "default": "默认值",
        "verdict": "判断",
        "colon": "：",
    },
}

# code -> (English, Chinese); fields come from the finding's evidence (see engine modules)
MESSAGES: dict[str, tuple[str, str]] = {
    "range.high": (
        "{parameter} = {current} is above the usual range for {algorithm} ({low} to {high}).",
        "{parameter} = {current} 高于 {algorithm} 的常用范围（{low} 到 {high}）。",
    ),
    "range.low": (
        "{parameter} = {current} is below the usual range for {algorithm} ({low} to {high}).",
        "{parameter} = {current} 低于 {algorithm} 的常用范围（{low} 到 {high}）。",
    ),
    "learning_rate.unstable": (
        "Training is unstable; a third of the learning rate usually steadies it.",
        "训练不稳定；把学习率降到三分之一通常能让训练稳定下来。",
    ),
    "gamma.short_horizon": (
        "With gamma = {gamma} the agent looks about {horizon_steps} steps ahead, "
        "but episodes last about {episode_length} steps.",
        "gamma = {gamma} 时智能体只看约 {horizon_steps} 步之后的回报，"
        "而回合长度约 {episode_length} 步。",
    ),
    "target.too_fast": (
        "The target network follows the online network every {period_updates} updates, "
        "so the TD target moves almost as fast as the estimate chasing it.",
        "目标网络每 {period_updates} 次更新就跟随在线网络，TD 目标几乎和被拟合的估计一样快地变化。",
    ),
    "target.too_slow": (
        "The target network follows only every {period_updates} updates; learning waits "
        "on stale targets.",
        "目标网络每 {period_updates} 次更新才跟随一次，学习受制于过时的目标值。",
    ),
    "target.unstable": (
        "Training is unstable; a target network twice as slow (now every "
        "{period_updates} updates) damps value divergence.",
        "训练不稳定；让目标网络慢一倍（当前每 {period_updates} 次更新）可以抑制价值发散。",
    ),
    "buffer.small": (
        "The replay buffer holds {buffer_size} transitions while the run takes "
        "{run_steps} steps: old experience is overwritten quickly.",
        "回放缓冲区只容纳 {buffer_size} 条转移，而本次训练约 {run_steps} 步，旧经验很快被覆盖。",
    ),
    "explore.exhausted": (
        "The curve has been flat for {flat_episodes} episodes while epsilon sat at its "
        "floor ({epsilon}; the anneal ended at step {anneal_steps}, the run is at "
        "{env_steps}): the policy has stopped exploring.",
        "epsilon 已降到下限（{epsilon}；在第 {anneal_steps} 步结束退火，当前 {env_steps} 步），"
        "曲线已持平 {flat_episodes} 个回合：策略不再探索。",
    ),
    "variance.batch": (
        "Episode rewards vary widely (coefficient of variation {cv}); a larger batch "
        "averages each gradient over more transitions.",
        "回合奖励波动很大（变异系数 {cv}）；更大的批量让每次梯度平均更多的转移。",
    ),
    "ppo.batch_over_rollout": (
        "A minibatch of {batch_size} is larger than the rollout of {n_steps} x {n_envs} "
        "steps it is cut from.",
        "小批量 {batch_size} 大于它所取自的 rollout（{n_steps} x {n_envs} 步）。",
    ),
    "sac.ent_coef_fixed": (
        "A fixed entropy coefficient has to be tuned per task and reward scale; learning "
        'it against a target entropy ("auto") adapts by itself.',
        '固定的熵系数需要针对任务和奖励尺度调节；按目标熵自动学习（"auto"）会自行适应。',
    ),
    "sac.target_entropy_high": (
        'A positive target entropy asks for nearly uniform actions; "auto" uses -dim(A).',
        '正的目标熵要求近乎均匀的动作；"auto" 使用 -dim(A)。',
    ),
    "curve.too_short": (
        "Only {episodes} episodes: at least {minimum} are needed to judge a trend. "
        "Let the run go on and ask again.",
        "只有 {episodes} 个回合：至少需要 {minimum} 个才能判断趋势。请继续训练后再询问。",
    ),
    "curve.solved": (
        "Solved: the run reached {level} against the threshold {threshold} (smoothed, "
        "first at episode {solved_episode}). A stop_reward ends later runs there, with a "
        "checkpoint.",
        "已解决：达到 {level}，阈值为 {threshold}（平滑曲线在第 {solved_episode} 回合首次达到）。"
        "设置 stop_reward 可让以后的训练在此结束并保存检查点。",
    ),
    "curve.solved_kept": (
        "Solved: the run reached {level} against the threshold {threshold}, and its "
        "stop_reward already ends it there. Keep its checkpoint; nothing to change.",
        "已解决：达到 {level}，阈值为 {threshold}，stop_reward 已会在此结束训练。"
        "保留检查点即可，无需修改。",
    ),
    "curve.improving": (
        "Still improving by {slope_per_100} per 100 episodes at {level}; at this pace it "
        "needs about {more_episodes} more episodes (with a 20% margin).",
        "仍在提升：当前 {level}，每 100 回合提升 {slope_per_100}；按此速度约还需 "
        "{more_episodes} 个回合（含 20% 余量）。",
    ),
    "curve.near_flat": (
        "Flat at {level}, just short of the threshold {threshold}: a smaller step size "
        "for the final phase often closes the gap.",
        "曲线停在 {level}，略低于阈值 {threshold}：最后阶段减小学习率常能补上差距。",
    ),
    "curve.plateau": (
        "No progress for {flat_episodes} episodes (level {level}, {slope_per_100} per 100 "
        "episodes): more of the same will not help. Stop here and retry with the "
        "changes suggested in this advice.",
        "已有 {flat_episodes} 个回合没有进展（水平 {level}，每 100 回合变化 {slope_per_100}）："
        "继续训练无济于事。请在此停止，并按本建议中的修改重新训练。",
    ),
    "curve.collapse": (
        "The smoothed reward fell from {best} (episode {best_episode}) to {end}, losing "
        "{drop_pct} of its gain. End runs at their best with stop_reward (judged on "
        "greedy evaluations).",
        "平滑奖励从 {best}（第 {best_episode} 回合）跌到 {end}，失去了 {drop_pct} 的提升。"
        "用 stop_reward 在最佳时结束训练（按贪心评估判断）。",
    ),
    "curve.high_variance": (
        "Training rewards include exploration and vary a lot (cv {cv}); judge progress "
        "on greedy evaluations over more episodes.",
        "训练奖励包含探索且波动大（变异系数 {cv}）；请用更多回合的贪心评估来判断进展。",
    ),
    "curve.none": (
        "No episode rewards, so the curve was not judged.",
        "没有回合奖励，因此未分析奖励曲线。",
    ),
    "explore.apex": (
        "Ape-X exploration gives each of the {actors} acting slots a fixed epsilon, "
        "from 0.4 down to nearly greedy, so some of them always explore.",
        "Ape-X 探索为 {actors} 个采样槽位各分配固定的 epsilon（从 0.4 到接近贪心），"
        "始终有一部分在探索。",
    ),
    "system.policy_lag": (
        "The newest experience comes from a policy {policy_lag} versions (about "
        "{lag_updates} updates) behind the learner; fewer updates per inserted transition "
        "let acting keep up.",
        "最新经验来自落后学习器 {policy_lag} 个版本（约 {lag_updates} 次更新）的策略；"
        "减少每条转移的采样次数可让采样跟上。",
    ),
    "system.replay_shortfall": (
        "The learner reaches a replay ratio of {replay_ratio} against the configured "
        "{samples_per_insert}: it cannot keep up with the actors (dropped: {dropped}).",
        "学习器的实际回放比为 {replay_ratio}，配置为 {samples_per_insert}："
        "学习器跟不上采样（丢弃：{dropped}）。",
    ),
    "system.slow_env": (
        "Only {env_steps_per_s} env steps/s; stepping more environments per worker "
        "batches the policy's forward passes.",
        "每秒仅 {env_steps_per_s} 个环境步；每个 worker 运行更多环境可批量推理。",
    ),
    "algo.not_trainable": (
        "runt cannot train {algorithm} yet; these checks use stable-baselines3's names and ranges.",
        "runt 暂不能训练 {algorithm}；这些检查使用 stable-baselines3 的参数名和范围。",
    ),
    "arch.unknown": (
        "No layer widths given; for low-dimensional control two hidden layers of 64 to "
        "256 units are usual.",
        "未给出网络宽度；低维控制任务通常用两层 64 到 256 个单元的隐藏层。",
    ),
    "arch.deepen": (
        "One hidden layer ({hidden}); two are the usual minimum for value and policy networks.",
        "只有一层隐藏层（{hidden}）；价值和策略网络通常至少两层。",
    ),
    "arch.widen": (
        "A plateau at {level} for {flat_episodes} episodes with hidden layers {hidden}: "
        "the network may be too small for a better policy.",
        "隐藏层为 {hidden} 时曲线在 {level} 停滞了 {flat_episodes} 个回合：网络可能太小。",
    ),
    "arch.shrink": (
        "Hidden layers {hidden} are large for {env_steps_per_s} env steps/s; smaller "
        "layers act and learn faster.",
        "隐藏层 {hidden} 对每秒 {env_steps_per_s} 个环境步来说过大；更小的网络推理和学习更快。",
    ),
    "arch.keep": (
        "Hidden layers {hidden} are a usual size; no change suggested.",
        "隐藏层 {hidden} 属于常用规模；无需修改。",
    ),
}

EMPTY = {
    "hyperparameters": (
        "All checked settings are within their usual ranges.",
        "所有检查过的超参数都在常用范围内。",
    ),
    "strategy": (
        "Nothing in the curve or the metrics calls for a change of strategy.",
        "奖励曲线和指标都没有显示需要调整训练策略。",
    ),
    "architecture": ("No change suggested.", "无需修改。"),
}


WORDS = {  # verdicts and trends of the overview
    "too_short": ("too few episodes", "回合太少"),
    "solved": ("solved", "已解决"),
    "near": ("near the threshold", "接近阈值"),
    "plateau": ("plateau", "停滞"),
    "collapse": ("collapse after a peak", "达到峰值后崩溃"),
    "high_variance": ("high variance", "方差大"),
    "diverging": ("loss diverging", "损失发散"),
    "exploding": ("Q-values exploding", "Q 值爆炸"),
    "rising": ("rising", "上升"),
    "flat": ("flat", "持平"),
    "falling": ("falling", "下降"),
}


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        if value.is_integer() and abs(value) < 1e9:
            return str(int(value))
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return str(value)


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        return "-"


def _pick(pair: tuple[str, str], lang: Lang) -> str:
    return pair[1] if lang == "zh" else pair[0]


def _change(finding: Finding, facts: RunFacts, lang: Lang) -> str:
    """`**name: current → new** — `, or `**name: current** — ` when nothing changes."""
    if not finding.parameter or finding.value is None:
        return ""
    current = ""
    if finding.current is not None:
        default = f" ({LABELS[lang]['default']})" if finding.parameter in facts.defaults else ""
        current = fmt(finding.current) + default
    if finding.value == finding.current:
        return f"**{finding.parameter}: {current}** — "
    before = f": {current}" if current else ""
    return f"**{finding.parameter}{before} → {fmt(finding.value)}** — "


def finding_text(finding: Finding, facts: RunFacts, lang: Lang) -> str:
    """One Markdown list item: the change in bold, the reason, the evidence, the source."""
    labels = LABELS[lang]
    fields = _Fields({k: fmt(v) for k, v in finding.evidence.items()})
    fields |= {"parameter": finding.parameter or "", "current": fmt(finding.current)}
    fields |= {"algorithm": (facts.algorithm or "").upper(), "value": fmt(finding.value)}
    if "drop_from_peak" in finding.evidence:
        fields["drop_pct"] = f"{round(100 * finding.evidence['drop_from_peak'])}%"
    sentence = _pick(MESSAGES[finding.code], lang).format_map(fields)
    text = f"- {_change(finding, facts, lang)}{sentence}"
    if finding.evidence:
        evidence = ", ".join(f"{k} = {fmt(v)}" for k, v in finding.evidence.items())
        text += f"\n  {labels['evidence']}{labels['colon']}{evidence}."
    if finding.source:
        text += f" _{labels['source']}{labels['colon']}{finding.source}._"
    return text + "\n"


def title(lang: Lang, model_id: int | None = None) -> str:
    labels = LABELS[lang]
    run = f" — {labels['run']} {model_id}" if model_id is not None else ""
    return f"# {labels['title']}{run}\n\n"


def _curve_line(o: Mapping[str, Any], lang: Lang) -> str:
    if "episodes" not in o:
        return ""
    f = {k: fmt(v) for k, v in o.items()} | {"trend": _pick(WORDS[o["trend"]], lang)}
    if lang == "zh":
        return (
            f"- {f['episodes']} 个回合，按 {f['window']} 个回合平滑："
            f"从 {f['start']} 到 {f['end']}，最高 {f['best']}（第 {f['best_episode']} 回合）；"
            f"最后三分之一 {f['recent_mean']}"
            f" ± {f['recent_std']}；趋势{f['trend']}（每 100 回合 {f['slope_per_100']}）。\n"
        )
    return (
        f"- {f['episodes']} episodes, smoothed over {f['window']}: from {f['start']} to "
        f"{f['end']}, best {f['best']} at episode {f['best_episode']}; last third "
        f"{f['recent_mean']} ± {f['recent_std']}; trend {f['trend']} "
        f"({f['slope_per_100']} per 100 episodes).\n"
    )


def _metrics_line(o: Mapping[str, Any], lang: Lang) -> str:
    if not o.get("metric_reports"):
        return ""
    names = ("loss_name", "loss_min", "loss_last", "q_abs", "epsilon", "policy_lag")
    names += ("replay_ratio", "env_steps_per_s", "env_steps")
    shown = ", ".join(f"{n} = {fmt(o[n])}" for n in names if o.get(n) is not None)
    label = _pick(("Metrics ({n} reports)", "指标（{n} 次报告）"), lang)
    return f"- {label.format(n=o['metric_reports'])}{LABELS[lang]['colon']}{shown}.\n"


def overview_text(o: Mapping[str, Any], lang: Lang) -> str:
    labels = LABELS[lang]
    who = " / ".join(str(o[k]) for k in ("algorithm", "env_id") if o.get(k)) or "?"
    lines = [f"## {labels['overview']}\n\n"]
    lines.append(f"- {who}; Gymnasium reward_threshold = {fmt(o.get('threshold'))}.\n")
    lines += [_curve_line(o, lang), _metrics_line(o, lang)]
    flags = [*o.get("verdicts", [])]
    flags += [name for name in ("diverging", "exploding") if o.get(name)]
    if flags:
        words = ", ".join(_pick(WORDS[flag], lang) for flag in flags)
        lines.append(f"- {labels['verdict']}{labels['colon']}{words}.\n")
    if o.get("defaults"):
        note = _pick(
            (
                "{n} settings not given are read as runt's defaults for {algorithm}",
                "未给出的 {n} 项设置按 runt 的 {algorithm} 默认值分析",
            ),
            lang,
        )
        lines.append(f"- {note.format(n=len(o['defaults']), algorithm=o['algorithm'])}.\n")
    return "".join(lines) + "\n"


def part_text(part: Part, facts: RunFacts, lang: Lang) -> str:
    if part.name == "overview":
        return overview_text(part.overview, lang)
    body = "".join(finding_text(f, facts, lang) for f in part.findings)
    empty = f"- {_pick(EMPTY[part.name], lang)}\n"
    return f"## {LABELS[lang][part.name]}\n\n{body or empty}\n"


NOTES = {
    "llm": (
        "_Answer by the language model {model}, given the built-in findings._\n\n",
        "_以下由语言模型 {model} 根据内置分析结果回答。_\n\n",
    ),
    "llm_failed": (
        "\n\n_The language model did not answer ({reason}); the built-in analysis follows._\n\n",
        "\n\n_语言模型未能回答（{reason}）；以下为内置分析。_\n\n",
    ),
    "failed": (
        "\n\n_The analysis failed; the error is in the service log._\n",
        "\n\n_分析失败；错误已记录在服务日志中。_\n",
    ),
}


def note(name: str, lang: Lang, **fields: str) -> str:
    return _pick(NOTES[name], lang).format(**fields)


def render(parts: list[Part], facts: RunFacts, lang: Lang) -> str:
    return "".join(part_text(part, facts, lang) for part in parts)
