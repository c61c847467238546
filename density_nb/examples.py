"""Short texts written for this project (no third-party text), used by the quickstart and tests."""

QUICKSTART_TEXT = (
    "The lighthouse keeper climbed the narrow stairs every evening. When the lamp was lit, "
    "the ships in the bay could see the rocks, and the captain of the last boat waved"
)

SAMPLE_TEXTS = (
    QUICKSTART_TEXT,
    "Paris is the capital of France, and Berlin is the capital of Germany.",
    "She opened the window, looked at the rain, and decided to stay at home with a book.",
    "One, two, three, four, five, six, seven, eight, nine, ten.",
    "The recipe asks for two cups of flour, one egg, a pinch of salt and warm milk.",
    "In the morning the market was quiet; by noon every stall had sold its bread.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
    "Water boils at one hundred degrees Celsius at sea level, but at lower temperatures on mountains.",
)
