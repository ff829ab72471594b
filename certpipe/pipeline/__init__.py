"""Loading, validating and resolving pipeline files."""
