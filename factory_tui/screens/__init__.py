"""The console's screens: a task in full, an agent's run, help, and the dialogs."""
