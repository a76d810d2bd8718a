"""Tests of rainbow_ext, laid out like the package."""
