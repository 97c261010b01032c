"""The event log and what reads it: storing events (`eventlog`, `ingest`), live streams,
the read cache and the supervisor of heartbeats and lost starts."""
