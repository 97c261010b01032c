"""The `runt` command: the composition root that wires the web service, agents, the
embedded mode and the client together, one module per command group."""
