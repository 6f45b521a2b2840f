"""Reliability and security tests (issue 9): faults injected into real components."""
