"""oomforensics: out-of-memory forensics of Go services on Kubernetes."""

__version__ = "0.1.0"
