"""Stage 5, the paper: every figure and table named once with its inputs (registry), the figures, the
tables, and the findings page.
"""
