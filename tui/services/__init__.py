"""Plain services the command line and the control room share (no Textual, no click)."""
