"""The MuJoCo CPU backend: task scenes, N environments stepped together, offscreen rendering."""
