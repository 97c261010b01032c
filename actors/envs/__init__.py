"""Environments: building Gymnasium vector environments for a run, and runt's own
(`mec/`: runt/MecOffload-v0). See docs/environments.md."""
