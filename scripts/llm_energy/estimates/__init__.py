"""Stage 4, estimate and replay: whole-workload energy by the paper's binned method and by the energy
model (estimate), the FLOPs ideal's hardware specs (specs), carbon and cost (carbon), and the
metered replay that checks both (replay).
"""
