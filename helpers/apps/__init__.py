"""Endpoints the lessons study, importable by the tests and the leak checker.

The notebooks show (and define) the same endpoints in their own cells; a test keeps the two
in step.
"""
