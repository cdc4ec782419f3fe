"""The bottom layer: engine contract and model types, prompt types, errors and settings.

Nothing here imports the rest of cgstudio; every other package may import this one.
"""
