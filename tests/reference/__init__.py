"""Independent reference implementations used only by the test-suite."""
