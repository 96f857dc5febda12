"""The control room: the Textual app (``app``), its data feed, panes, screens and widgets.

``tower`` (``tui.cli``) and ``tower demo`` start it through ``tui.room.app.run_app``;
nothing outside this package imports Textual.
"""
