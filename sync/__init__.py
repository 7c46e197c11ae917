"""The merge engine and the sync protocol."""
