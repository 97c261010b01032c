"""Algorithms without a broker: the Algorithm record and protocols, DQN, PPO and SAC,
their collectors, replay and exploration, greedy evaluation, run-spec validation and the
one-process loop. See docs/algorithms.md."""
