"""The console's panes and screens, one module each."""
