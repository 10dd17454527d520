"""The Jupyter server extension: the only part of the project that imports
tornado / jupyter_server. Handlers are thin; the work is in the core."""
