"""Serving engines (llama.cpp, vLLM) driven from secateur: each engine runs in a Python of its own
(vLLM pins its own transformers), through a standalone worker script that imports only the engine."""
