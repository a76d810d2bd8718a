"""Shared test helpers: probe environments, transition streams, command runners."""
