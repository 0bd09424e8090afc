"""Lossless rotation of the stack's own log files (``flows/logs.py``) and its logrotate twin."""
