"""What a user writes and how it is read: spec and workload models, bounded YAML, files, problems."""
