"""Tests of the benchmark scripts (tiny sizes; they check the output contract, not speed)."""
