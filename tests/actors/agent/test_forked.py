"""Forking actor processes from a connected agent (actors/agent/forked.py, the fork rule of
broker/sync.py): the child must not touch the agent's broker connection, and the agent
must keep it."""

from __future__ import annotations

import os
import uuid

import kombu
import pytest

from broker.sync import make_bus
from broker.topology import Topology
from schemas.messages import StopRun

pytestmark = pytest.mark.rabbitmq


def test_a_forked_child_lets_go_of_its_parents_connection(amqp_url):
    topology = Topology(f"tfork{uuid.uuid4().hex[:8]}")
    queue = topology.stop_listener("fork-test", run_id=1)
    received = []
    bus = make_bus(amqp_url, topology, "parent")
    try:
        bus.connect()
        bus.consume(queue, lambda delivery: received.append(delivery.body), prefetch=10)
        pid = os.fork()
        if pid == 0:  # the child: its copy is disconnected; exit without any teardown
            os._exit(0 if not bus.connected else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child still held a connection"

        # The parent's connection survived the child's exit: publish and consume on it.
        assert bus.connected
        stop = StopRun(run_id=1, status="stopped", reason="fork test")
        bus.publish_message(topology.commands, topology.stop_key(1), stop)
        for _ in range(50):
            if bus.poll(0.1):
                break
        assert received, "the parent's connection no longer delivers"
        assert bus.connected
    finally:
        bus.close()
        with kombu.Connection(amqp_url) as conn:
            channel = conn.channel()
            channel.queue_delete(topology.dead_letters().name)
            for exchange in topology.exchanges:
                channel.exchange_delete(exchange.name)
