"""GENERATED code: the cochlear filter kernels and hair-cell/integration passes, written by
tools/make_filter_kernels.py from the filter table (rtmirror/resources/cochba.npz). Do not edit;
regenerate (tests/test_frontend.py checks that these files are current)."""
