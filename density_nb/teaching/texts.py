"""The teaching corpus: short passages written for this project (no third-party text), so that the
tutorials run live offline and on Binder, where WikiText is not available.

Each passage is a prompt and the next word a reader would expect; the traced prediction is that word,
as in corpus runs (``passages.trace_passages``: the root is the prompt's last token). The passages cover
varied genres, and some come in pairs built to contrast one thing at a time:

* ``context``: the same sentence and next word, alone (``short``) and after a paragraph that makes the
  word predictable (``long``): finding 5, longer context;
* ``certainty``: a continuation almost everyone would give (``confident``) beside one with many
  plausible words (``open``): finding 7, uncertainty;
* ``rarity``: an everyday next word (``common``) beside a rare one (``rare``): finding 4.

``table()`` gives them as a prompt table (``passage_id``, ``prompt``, ``next_word``, ``genre``,
``pair``, ``role``), which ``run_corpus(data=...)`` and ``read_prompts`` accept once written to CSV
(``write_table``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from density_nb.files import write_text

__all__ = ["PASSAGES", "TeachingPassage", "pairs", "table", "write_table"]


@dataclass(frozen=True)
class TeachingPassage:
    """One passage: ``prompt`` then ``next_word`` (the traced prediction)."""

    passage_id: int
    genre: str
    prompt: str
    next_word: str
    pair: str = ""  # e.g. "context-1": passages of one pair share it
    role: str = ""  # the passage's side of the pair ("short"/"long", "confident"/"open", "common"/"rare")

    @property
    def text(self) -> str:
        return f"{self.prompt} {self.next_word}"


_P = TeachingPassage
PASSAGES: tuple[TeachingPassage, ...] = (
    # context: the same sentence, alone and after a paragraph that sets up the next word
    _P(1, "story", "This year the first customer at her stall asked for two jars of", "honey", "context-1", "short"),
    _P(
        2,
        "story",
        "Mara keeps bees in the garden behind the old school. Every autumn she sells jars of golden honey at the "
        "village fair, and the children call her the honey lady. This year the first customer at her stall asked "
        "for two jars of",
        "honey",
        "context-1",
        "long",
    ),
    _P(3, "sports", "When the starter fired the gun, the first runner to leave the blocks was", "Tom", "context-2", "short"),
    _P(
        4,
        "sports",
        "Our team trained all winter for the relay. Tom runs the first leg, Priya the second, Jonas the third, "
        "and I run the last one. When the starter fired the gun, the first runner to leave the blocks was",
        "Tom",
        "context-2",
        "long",
    ),
    _P(5, "story", "In the evening the old fisherman sat down by the fire and told us about the", "storm", "context-3", "short"),
    _P(
        6,
        "story",
        "Nobody in the village had forgotten the great storm, the night the wind tore the roofs off and the sea "
        "threw the boats onto the road. In the evening the old fisherman sat down by the fire and told us about the",
        "storm",
        "context-3",
        "long",
    ),
    # certainty: a near-certain continuation beside an open one
    _P(7, "list", "Monday, Tuesday, Wednesday, Thursday, Friday, Saturday and", "Sunday", "certainty-1", "confident"),
    _P(8, "description", "On the table next to the window there was a small", "lamp", "certainty-1", "open"),
    _P(9, "language", "The opposite of hot is cold, and the opposite of up is", "down", "certainty-2", "confident"),
    _P(10, "story", "After lunch the two friends walked down to the river and talked about", "music", "certainty-2", "open"),
    _P(11, "arithmetic", "Two plus two is four, three plus three is six, and four plus four is", "eight", "certainty-3", "confident"),
    _P(12, "story", "When she opened the parcel, the first thing she saw was a", "letter", "certainty-3", "open"),
    # rarity: an everyday next word beside a rare one
    _P(13, "everyday", "She put the keys in her bag and walked out of the", "house", "rarity-1", "common"),
    _P(14, "science", "Under the microscope the student could clearly see the green", "chloroplasts", "rarity-1", "rare"),
    _P(15, "everyday", "Every morning before work he drinks a cup of", "coffee", "rarity-2", "common"),
    _P(16, "description", "The old map was kept in a cabinet made of dark polished", "mahogany", "rarity-2", "rare"),
    _P(17, "everyday", "The children ran across the playground and kicked the", "ball", "rarity-3", "common"),
    _P(18, "science", "The geologist tapped the grey rock and said it was mostly", "feldspar", "rarity-3", "rare"),
    # genres
    _P(19, "recipe", "Whisk the eggs with the sugar until pale, fold in the flour, and bake the cake for thirty", "minutes"),
    _P(
        20,
        "weather",
        "Tomorrow will start cloudy in the north, with light rain spreading east in the afternoon. Temperatures will stay close to ten",
        "degrees",
    ),
    _P(
        21,
        "sports",
        "With two minutes left the score was level, and then the captain curled a free kick past the keeper into the top corner of the",
        "net",
    ),
    _P(
        22,
        "letter",
        "Dear Mrs Patel, thank you for your kind letter and for the photographs of your garden. I hope to visit you again in the",
        "spring",
    ),
    _P(23, "science", "When water is heated to one hundred degrees Celsius at sea level, it begins to", "boil"),
    _P(24, "legal", "The tenant agrees to pay the rent on the first day of each calendar", "month"),
    _P(25, "poem", "The moon climbs slowly over the hill, the fields lie silver, cold and", "still"),
    _P(26, "dialogue", '"Are you coming to the concert tonight?" asked Lena. "I can\'t," said Omar, "I have to finish my', "homework"),
    _P(27, "list", "Things to pack for the trip: passport, charger, toothbrush, socks and a warm", "jacket"),
    _P(
        28,
        "news",
        "The city council voted on Tuesday to build a new bridge across the river, which the mayor said would open to traffic next",
        "year",
    ),
    _P(29, "instructions", "To restart the router, unplug it from the wall, wait thirty seconds, and then plug it back", "in"),
    _P(30, "story", "Anna lent her bicycle to Felix, and a week later Felix gave the bicycle back to", "Anna"),
    _P(31, "language", "In French the word for cat is chat, and the word for dog is", "chien"),
    _P(
        32,
        "history",
        "The small harbour town grew quickly after the railway arrived, and by the end of the century it had "
        "three schools, a theatre and a",
        "hospital",
    ),
)


def table() -> pd.DataFrame:
    """The teaching corpus as a prompt table: ``passage_id``, ``genre``, ``pair``, ``role``, ``prompt``,
    ``next_word``, ``text`` (= prompt + next word)."""
    return pd.DataFrame(
        {
            "passage_id": [p.passage_id for p in PASSAGES],
            "genre": [p.genre for p in PASSAGES],
            "pair": [p.pair for p in PASSAGES],
            "role": [p.role for p in PASSAGES],
            "prompt": [p.prompt for p in PASSAGES],
            "next_word": [p.next_word for p in PASSAGES],
            "text": [p.text for p in PASSAGES],
        }
    )


def pairs(kind: str) -> pd.DataFrame:
    """The passages of the pairs of one kind (``"context"``, ``"certainty"`` or ``"rarity"``), pair by pair."""
    df = table()
    return df[df.pair.str.startswith(f"{kind}-")].sort_values(["pair", "passage_id"]).reset_index(drop=True)


def write_table(path: str | os.PathLike[str]) -> Path:
    """The prompt table as a CSV file (``passage_id``, ``prompt``, ``next_word``) for ``run_corpus(data=path)``."""
    out = Path(path)
    text = table()[["passage_id", "prompt", "next_word"]].to_csv(index=False)
    if not out.exists() or out.read_text(encoding="utf-8") != text:
        write_text(out, text)
    return out
