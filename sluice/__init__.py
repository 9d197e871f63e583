"""Sluice's local runtime: the whole pipeline of template.yaml, offline, on one machine."""
