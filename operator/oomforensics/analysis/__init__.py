"""Pure analysis: compare snapshots, account for memory, name suspects. Data in, data out."""
