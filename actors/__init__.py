"""Rollout, buffer and trainer actors, their algorithms and networks, and the agent that
launches and supervises them."""
