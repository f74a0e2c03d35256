"""Evaluation: fine-tune the student on traces (TRL) and measure held-out pass@1 (DESIGN §9)."""
