"""The agent: takes run commands from the broker, starts the actors of a run as processes
(forked warm) or threads, supervises and restarts them."""
