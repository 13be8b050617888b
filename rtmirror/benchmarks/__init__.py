"""Benchmarks: `rtmirror bench NAME`; each module prints ratios against an anchor measured in the same run."""
