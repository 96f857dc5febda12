"""`tower demo`: a throw-away repository, simulated agents, and the control room on top."""
