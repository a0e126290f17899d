"""Pytest fixtures for this test peer."""
