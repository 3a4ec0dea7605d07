"""Online serving under load: the rate sweep against the real vLLM server (sweep) and the energy-
latency frontier it gives (frontier).
"""
