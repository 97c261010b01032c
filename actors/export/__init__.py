"""Export: a stored checkpoint back into a policy, files that work outside runt
(safetensors, TorchScript), and pictures of a trained policy."""
