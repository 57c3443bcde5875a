"""Process lifecycle shared by every long-running command: dying with the parent, bounded stops."""
