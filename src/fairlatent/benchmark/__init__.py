"""Real-data benchmarks: the paper's protocol run end to end, with the paper's numbers beside ours."""
