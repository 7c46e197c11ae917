"""Tests of the sync engine: pure merge rules, reference replicas, and the SQL store."""
