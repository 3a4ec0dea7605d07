"""The models a cell measures: seeded random-weight models with a real tokenizer (build), a trained
GGUF model from the package registry (gguf), and FLOPs from the architecture (flops).
"""
