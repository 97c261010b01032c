"""bench/time_to_solve.py in parts: `common` (contenders, the definition of solved, trials),
`baselines` (stable-baselines3 and runt-serial, a child process per trial), `runt` (runt over
RabbitMQ: agent, web app, event taps), `report` (tables and ratios)."""
