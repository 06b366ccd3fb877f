"""The REST API and web dashboard (`tqrun api`)."""
