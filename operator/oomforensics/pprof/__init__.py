"""Pure pprof formats: profile.proto, heap and goroutine debug=1 text, and the exact diff.

Nothing here does I/O beyond the bytes it is handed.
"""
