"""The benchmark harness: legorun measured side by side with the same guests run natively,
under qemu-user and on raw Unicorn (`python -m legorun.bench`)."""
