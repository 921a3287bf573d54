"""GPU engines (mjlab, Isaac Lab 2.3 / 3.0): task packages exported from templates, launched with the engine's
own Python, and checked statically against the engines' published wheels."""
