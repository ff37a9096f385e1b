"""The user's side: the CLI, the experiment file, the sweep runner, the results table."""
