"""Command-line entry points: ``python -m launch.<verb>``; each parses flags and calls the
library."""
