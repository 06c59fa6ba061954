"""Local control plane harness."""
