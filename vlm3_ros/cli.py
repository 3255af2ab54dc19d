"""Placeholder."""
def main() -> int:
    print("vlm3-ros")
    return 0
