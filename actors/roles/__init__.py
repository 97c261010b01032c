"""Roles: the loops over the broker that one actor process each runs (rollout worker,
replay and on-policy buffers, trainer, evaluator) and the factory that picks them."""
