"""Quality metrics and checks of synthesized data."""
