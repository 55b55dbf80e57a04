"""MedMO Agent: MedMO as tools for agents, notebooks and scripted case reviews."""

__version__ = "0.1.0"
