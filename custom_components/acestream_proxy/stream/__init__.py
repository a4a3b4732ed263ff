"""The data plane: engine client, ring, TS parsing, broadcasts and HLS.

Nothing here imports Home Assistant or the integration's glue around it (a test
reads every module's imports to keep it so); the glue drives these objects.
"""
