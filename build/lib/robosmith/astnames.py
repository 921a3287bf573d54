"""Dotted names in Python syntax trees, for the static checks of reward code and of exported packages."""

from __future__ import annotations

import ast


def dotted_name(node: ast.expr) -> list[str] | None:
    """['torch', 'linalg', 'norm'] for torch.linalg.norm, ['x'] for x; None when it does not start at a name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]
