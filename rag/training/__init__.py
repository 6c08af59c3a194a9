"""Training the reader: data from the shared QA sets (split by passage), the CPU training
loop with resumable checkpoints, and the export of the shipped weights."""
