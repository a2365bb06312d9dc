"""The mutation score (``python mutations/run.py``): named ways to break the product, and the
tests that must catch each. See mutations/README.md."""
