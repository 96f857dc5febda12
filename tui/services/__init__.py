"""Services behind the command line: store and core work with no click and no Textual."""
