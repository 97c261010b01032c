"""Domain modules the views call, apart from HTTP: `runs` (submit, stop, resume, whose
run it is) and `policies` (what may be done with a run's trained policy). Sweeps and the
run queue belong beside them. Refusals are the exceptions of `errors`; web/http.py
answers each kind with its status code."""
