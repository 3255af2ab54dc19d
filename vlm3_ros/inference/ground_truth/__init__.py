"""TEST DOUBLE backend that answers VLM3 prompts from recorded ground truth (depth images, poses).
Never a model: it exists to test the whole chain on real data with answers whose values are known."""
