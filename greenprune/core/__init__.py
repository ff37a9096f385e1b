"""What the services share without gRPC: checkpoints, models, energy, jobs, settings."""
