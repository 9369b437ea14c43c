"""What ppo and grpo share: rollouts, the reward model, reward functions and their config checks."""
