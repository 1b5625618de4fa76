"""The Qt front end. Talks to core/ through the task API (ui/tasks.py); never imports
an engine."""
