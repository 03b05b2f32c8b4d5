"""Training: synthetic and real data, interaction simulation, augmentation, training loops.

Run by `medseg-train` (see cli.py). Nothing here is imported by the server.
"""
