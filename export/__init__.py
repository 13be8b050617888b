"""rtmirror.export: PyTorch encoder -> streaming ONNX (step graph + full graph) + manifest.

`onnx_export.export_encoder` / `check_parity` (torch + onnx, the `train` extra) and the
`rtmirror export` command (`cli`). The result is read by `rtmirror.runtime.EncoderRuntime`;
the format is described in docs/MODEL_FORMAT.md. Importing this package imports nothing heavy.
"""
