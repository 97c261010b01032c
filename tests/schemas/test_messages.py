"""The `episodes` event: a worker's finished episodes as columns, read back as episodes."""

from __future__ import annotations

import json

import pytest

from schemas.messages import BadMessage, EpisodeFinished, EpisodesFinished, decode_message


def batch(**changes) -> EpisodesFinished:
    fields = {
        "run_id": 7,
        "worker": 2,
        "incarnation": 1,
        "first_seq": 40,
        "rewards": [9.0, 12.5, 30.0],
        "lengths": [9, 13, 30],
        "env_steps": [800, 800, 816],
        "policy_versions": [3, 3, 4],
    }
    return EpisodesFinished(**{**fields, **changes})


def test_a_batch_expands_to_its_episodes_in_order_with_consecutive_seqs():
    episodes = decode_message(batch().encode()).expand()
    assert [type(e) for e in episodes] == [EpisodeFinished] * 3
    assert [(e.seq, e.reward, e.length, e.env_steps, e.policy_version) for e in episodes] == [
        (40, 9.0, 9, 800, 3),
        (41, 12.5, 13, 800, 3),
        (42, 30.0, 30, 816, 4),
    ]
    assert {(e.run_id, e.worker, e.incarnation) for e in episodes} == {(7, 2, 1)}
    # ids follow from the batch's: a redelivered batch gives the same, and is stored once
    assert [e.event_id for e in batch(event_id="b1").expand()] == ["b1:40", "b1:41", "b1:42"]


def test_columns_of_different_lengths_are_refused_naming_the_column():
    body = json.loads(batch().encode())
    body["env_steps"] = [800, 800]
    with pytest.raises(BadMessage, match="env_steps"):
        decode_message(json.dumps(body).encode())


@pytest.mark.parametrize(
    ("column", "value"), [("lengths", [9, -1, 30]), ("env_steps", [800, -5, 816])]
)
def test_negative_lengths_and_env_steps_are_refused(column, value):
    body = {**json.loads(batch().encode()), column: value}
    with pytest.raises(BadMessage, match=column):
        decode_message(json.dumps(body).encode())


def test_an_empty_batch_is_refused():
    body = {
        **json.loads(batch().encode()),
        "rewards": [],
        "lengths": [],
        "env_steps": [],
        "policy_versions": [],
    }
    with pytest.raises(BadMessage, match="rewards"):
        decode_message(json.dumps(body).encode())


def test_a_batch_of_records_from_an_earlier_release_is_read_as_the_same_episodes():
    """An event log that still holds events of the record form must not dead-letter
    them after an upgrade."""
    new = json.loads(batch().encode())
    common = ("type", "schema_version", "event_id", "run_id", "worker", "incarnation")
    old = {k: new[k] for k in common}
    old["episodes"] = [
        {"seq": 40, "reward": 9.0, "length": 9, "env_steps": 800, "policy_version": 3},
        {"seq": 41, "reward": 12.5, "length": 13, "env_steps": 800, "policy_version": 3},
        {"seq": 42, "reward": 30.0, "length": 30, "env_steps": 816, "policy_version": 4},
    ]
    assert decode_message(json.dumps(old).encode()) == decode_message(json.dumps(new).encode())


def test_records_with_gaps_in_their_seqs_are_refused():
    old = {
        "type": "episodes",
        "run_id": 7,
        "worker": 2,
        "episodes": [
            {"seq": 40, "reward": 9.0, "length": 9},
            {"seq": 42, "reward": 12.5, "length": 13},
        ],
    }
    with pytest.raises(BadMessage, match="consecutive"):
        decode_message(json.dumps(old).encode())
