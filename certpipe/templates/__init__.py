"""Starter pipelines that ``certpipe init`` writes, one YAML file per template."""
