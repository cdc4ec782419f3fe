"""``cgstudio bench``: what users feel (TTFT, keystroke FIM, concurrency, speculation), with baselines."""
