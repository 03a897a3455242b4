"""The `oomforensics` command line."""
