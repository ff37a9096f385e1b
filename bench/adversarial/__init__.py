"""The adversarial campaign against the three services (``python -m bench.adversarial``)."""
