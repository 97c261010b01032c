"""The runt web service: REST API, auth, persistence and the event-log consumer."""
