"""Typed records shared by every part of runt: config, API bodies, commands and events."""
