"""The energy model of one cell, fitted to its measured points (energy_model), and a workload served as
a stack serves it, priced by that model (serving).
"""
