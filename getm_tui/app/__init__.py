"""The Textual app: the App, its screens, widgets, row models and styles."""
