"""Evaluation (research side): held-out sets (heldout.py), metrics over a model's output
(evaluate.py) and the report (report.py: REPORT.md, figures)."""
