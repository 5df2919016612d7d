"""Baseline apps the read endpoint is measured against (bench/read_path.py starts them)."""
