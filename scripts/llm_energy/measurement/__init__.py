"""Stage 3, measure and check: one job per cell (cell, job), the sweep loop and its protocol (loop),
meters, backends, prompts of exact lengths, device locks, and the validation of the rows
(validation).
"""
