"""Non-contest questions (math word problems, science questions, chat): negatives for the contest filter."""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from random import Random

from tessy.microworld.families import NAMES, PLACES, THINGS

DOMAINS = ("math", "science", "chat")


@dataclass(frozen=True)
class OtherQuestion:
    domain: str  # "math" | "science" | "chat"
    text: str
    reasoning: str
    answer: str


def _math(rng: Random) -> tuple[str, str, str]:
    name, things = rng.choice(NAMES), rng.choice(THINGS)
    kind = rng.randrange(6)
    if kind == 0:
        a, b = rng.randint(5, 60), rng.randint(2, 30)
        c = rng.randint(1, a + b)
        return (
            f"{name} has {a} {things} and buys {b} more. Then {name} gives {c} to a friend. "
            f"How many {things} does {name} have now?",
            f"{a} + {b} = {a + b}, and {a + b} - {c} = {a + b - c}.",
            f"{name} has {a + b - c} {things}.",
        )
    if kind == 1:
        v, t = rng.randint(20, 120), rng.randint(2, 9)
        return (
            f"A train travels at {v} km/h for {t} hours. How far does it travel?",
            f"Distance is speed times time: {v} * {t} = {v * t}.",
            f"It travels {v * t} km.",
        )
    if kind == 2:
        p, b = rng.choice([10, 20, 25, 50]), rng.randint(1, 40) * 20
        return (
            f"What is {p}% of {b}?",
            f"{p}% of {b} is {b} * {p} / 100 = {b * p // 100}.",
            f"{b * p // 100}",
        )
    if kind == 3:
        length, width = rng.randint(2, 30), rng.randint(2, 30)
        return (
            f"A rectangular garden near {rng.choice(PLACES)} is {length} m long and {width} m wide. "
            "What is its area?",
            f"Area is length times width: {length} * {width} = {length * width}.",
            f"The area is {length * width} square meters.",
        )
    if kind == 4:
        x, a, b = rng.randint(1, 12), rng.randint(2, 9), rng.randint(1, 20)
        return (
            f"Solve for x: {a}x + {b} = {a * x + b}.",
            f"Subtract {b}: {a}x = {a * x}. Divide by {a}: x = {x}.",
            f"x = {x}",
        )
    n, k = rng.randint(4, 10), rng.randint(2, 3)
    return (
        f"In how many ways can {name} choose {k} books from a shelf of {n} different books?",
        f"The order does not matter, so the count is C({n}, {k}) = {comb(n, k)}.",
        f"There are {comb(n, k)} ways.",
    )


_SCIENCE = [
    ("Why does ice float on water?", "Ice is less dense than liquid water because its crystal lattice holds "
     "molecules farther apart.", "Ice floats because it is about 9% less dense than liquid water."),
    ("Why is the sky blue?", "Shorter blue wavelengths scatter more in air (Rayleigh scattering).",
     "Air molecules scatter blue light more strongly than red light, so the sky looks blue."),
    ("What is the chemical symbol of gold?", "Gold comes from the Latin aurum.", "Au"),
    ("How do plants make their food?", "Photosynthesis turns light, water and carbon dioxide into sugar.",
     "Through photosynthesis: chlorophyll captures light to turn CO2 and water into glucose and oxygen."),
    ("What is the difference between speed and velocity?", "Velocity includes direction.",
     "Speed is how fast something moves; velocity is speed together with its direction."),
    ("Why do we have seasons on Earth?", "The axis is tilted about 23.4 degrees.",
     "Earth's tilted axis changes how directly sunlight hits each hemisphere during the year."),
    ("What happens to the boiling point of water at high altitude?", "Air pressure is lower up high.",
     "It drops, because lower air pressure lets water boil at a lower temperature."),
    ("How many chromosomes do human cells usually have?", "Humans have 23 pairs.", "46 chromosomes."),
    ("What is Newton's second law of motion?", "Force relates to mass and acceleration.",
     "Force equals mass times acceleration (F = m * a)."),
    ("Why does a metal spoon feel colder than a wooden one?", "Metals conduct heat well.",
     "Metal conducts heat away from your hand much faster than wood does."),
]  # fmt: skip

_ELEMENTS = [
    ("hydrogen", "H"), ("helium", "He"), ("carbon", "C"), ("nitrogen", "N"), ("oxygen", "O"),
    ("sodium", "Na"), ("magnesium", "Mg"), ("aluminium", "Al"), ("silicon", "Si"), ("sulfur", "S"),
    ("chlorine", "Cl"), ("potassium", "K"), ("calcium", "Ca"), ("iron", "Fe"), ("copper", "Cu"),
    ("zinc", "Zn"), ("silver", "Ag"), ("tin", "Sn"), ("mercury", "Hg"), ("lead", "Pb"),
]  # fmt: skip
_UNITS = [
    ("force", "newton (N)"), ("energy", "joule (J)"), ("power", "watt (W)"), ("pressure", "pascal (Pa)"),
    ("electric current", "ampere (A)"), ("temperature", "kelvin (K)"), ("frequency", "hertz (Hz)"),
    ("electric charge", "coulomb (C)"), ("mass", "kilogram (kg)"), ("length", "metre (m)"),
]  # fmt: skip


def _science(rng: Random) -> tuple[str, str, str]:
    kind = rng.randrange(3)
    if kind == 0:
        element, symbol = rng.choice(_ELEMENTS)
        return f"What is the chemical symbol of {element}?", "It is a standard symbol.", symbol
    if kind == 1:
        quantity, unit = rng.choice(_UNITS)
        return f"What is the SI unit of {quantity}?", f"The SI unit of {quantity} is named.", unit
    return rng.choice(_SCIENCE)


_CHAT = [
    ("Can you suggest a name for my new {pet}?", "A friendly, short name works well.",
     "How about Pepper, Biscuit or Luna?"),
    ("Write a short poem about {topic}.", "Keep it to four lines.",
     "Soft light on {topic},\nquiet as a breath,\nwe stop and we listen,\nand the day turns gold."),
    ("What should I cook for dinner if I only have {food} and {food2}?", "Combine them in one pan.",
     "Try a quick stir-fry with {food} and {food2}, seasoned with garlic and a little soy sauce."),
    ("How do I stay focused while studying at {place}?", "Short sessions and few distractions help.",
     "Work in 25-minute blocks, silence your phone, and take a short walk between blocks."),
    ("What is the difference between a list and a tuple in Python?", "Mutability is the key difference.",
     "Lists are mutable and tuples are immutable; tuples can be used as dictionary keys."),
    ("Can you explain what a hash map is?", "It maps keys to values through a hash function.",
     "A hash map stores key-value pairs and finds a value by hashing its key, usually in O(1) time."),
    ("Why does my Python script raise an IndentationError?", "Python uses indentation for blocks.",
     "The lines of one block are indented inconsistently; use four spaces everywhere."),
    ("I feel nervous about my exam tomorrow. Any advice?", "Reassure and give practical tips.",
     "Review your notes once, sleep well, and remember that you have prepared for this."),
    ("Recommend a good book for a long flight.", "Pick something gripping.",
     "Try 'The Martian' by Andy Weir: it is funny, fast and hard to put down."),
    ("How do I say thank you in Japanese?", "The common polite form.", "Arigatou gozaimasu."),
]  # fmt: skip

_FILL = {
    "pet": ["cat", "dog", "parrot", "hamster", "goldfish"],
    "topic": ["the sea", "autumn", "the city at night", "a quiet morning", "the mountains"],
    "food": ["rice", "eggs", "tomatoes", "potatoes", "beans"],
    "food2": ["spinach", "cheese", "onions", "mushrooms", "carrots"],
    "place": ["home", "the library", "a cafe", "the dorm"],
}


def _chat(rng: Random) -> tuple[str, str, str]:
    fill = {key: rng.choice(values) for key, values in _FILL.items()}
    text, reasoning, answer = rng.choice(_CHAT)
    return text.format(**fill), reasoning.format(**fill), answer.format(**fill)


_DRAW = {"math": _math, "science": _science, "chat": _chat}


def draw_other(rng: Random, domain: str) -> OtherQuestion:
    """One non-contest question of the given domain."""
    if domain not in _DRAW:
        raise ValueError(f"unknown domain {domain!r}; expected one of {DOMAINS}")
    text, reasoning, answer = _DRAW[domain](rng)
    return OtherQuestion(domain=domain, text=text, reasoning=reasoning, answer=answer)
