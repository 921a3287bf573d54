"""The agent: the reward-design loop, its LLM access, proposers and sandbox."""
