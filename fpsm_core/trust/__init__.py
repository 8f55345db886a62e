"""Trust: say when an input is outside what the model knows, and calibrate its probabilities."""
