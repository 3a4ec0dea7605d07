"""Stages 1 and 2, profile and bin: raw trace and task files (sources), per-request lengths and
statistics (profile, tasks), power-of-two bins (binning).
"""
