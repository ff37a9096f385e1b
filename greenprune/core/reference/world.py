"""A small synthetic world the reference model learns, written as natural sentences.

Things have a colour, a room, a size, a material, an owner and a neighbour; people live in a
town and have a friend; small sums, differences and products round it off. Everything is built
from a fixed seed, so the world, the training corpus and the held-out questions are the same on
every machine.

Each fact is written in two statements and three question forms. The training corpus holds the
statements and two of the three question forms; the third form of every fact is held out and
asked by the evaluation tasks, so no evaluation question appears verbatim in training. The
held-out text for perplexity gathers those held-out questions, with answers, by subject.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

WORLD_SEED = 20261129
WORLD_VERSION = 1
N_CHOICES = 4
QUESTION_FORMS = 3

THINGS = (
    "zorb", "plim", "tavel", "quib", "morn", "flink", "brul", "skee", "vonn", "drell", "gask",
    "wibble", "nock", "frell", "jisk", "lopt", "miv", "pogg", "rask", "snib", "trock", "ulm",
    "vesk", "yoff", "zell", "bix", "crom", "dulp", "ferb", "gluck", "hask", "klom", "lunt",
    "marp", "nib", "prav",
)  # fmt: skip
PEOPLE = ("Ana", "Ben", "Cora", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena")
COLOURS = ("red", "blue", "green", "yellow", "black", "white", "orange", "purple")
ROOMS = ("kitchen", "garden", "attic", "cellar", "garage", "hall", "shed", "library")
SIZES = ("tiny", "small", "big", "huge")
MATERIALS = ("wood", "stone", "glass", "metal", "paper", "wool")
TOWNS = ("Brindle", "Corvel", "Dunmore", "Elmstead", "Farrow", "Glenby")


@dataclass(frozen=True)
class Thing:
    """An object of the world and its attributes."""

    name: str
    colour: str
    room: str
    size: str
    material: str
    owner: str
    neighbour: str


@dataclass(frozen=True)
class Person:
    """A person of the world: where they live and who their friend is."""

    name: str
    town: str
    friend: str


@dataclass(frozen=True)
class World:
    """The whole synthetic world."""

    things: tuple[Thing, ...]
    people: tuple[Person, ...]


@dataclass(frozen=True)
class Fact:
    """One fact with its statements, question forms and the values its answer competes with.

    Attributes:
        kind: The attribute or operation, for example ``colour`` or ``plus``.
        key: A stable identifier of the fact, for example ``zorb.colour``.
        answer: The answer as it is written after ``Answer:``.
        candidates: Every value the answer could take (the answer included).
        statements: Declarative sentences that state the fact.
        questions: Question prompts, each ending in ``Answer:``.
        held_out: Index into ``questions`` of the form kept out of training.
    """

    kind: str
    key: str
    answer: str
    candidates: tuple[str, ...]
    statements: tuple[str, ...]
    questions: tuple[str, ...]
    held_out: int


def _pairs(names: tuple[str, ...], rng: random.Random) -> dict[str, str]:
    """Pairs names up at random so that the relation is symmetric."""
    order = list(names)
    rng.shuffle(order)
    partner: dict[str, str] = {}
    for first, second in zip(order[0::2], order[1::2], strict=True):
        partner[first] = second
        partner[second] = first
    return partner


@cache
def build_world(seed: int = WORLD_SEED) -> World:
    """Builds the world from a seed (the same seed always gives the same world)."""
    rng = random.Random(seed)
    neighbours = _pairs(THINGS, rng)
    things = tuple(
        Thing(
            name=name,
            colour=rng.choice(COLOURS),
            room=rng.choice(ROOMS),
            size=rng.choice(SIZES),
            material=rng.choice(MATERIALS),
            owner=rng.choice(PEOPLE),
            neighbour=neighbours[name],
        )
        for name in THINGS
    )
    friends = _pairs(PEOPLE, rng)
    people = tuple(Person(name, rng.choice(TOWNS), friends[name]) for name in PEOPLE)
    return World(things=things, people=people)


_THING_FORMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "colour": (
        ("The {t} is {v}.", "The colour of the {t} is {v}."),
        (
            "What colour is the {t}?",
            "Which colour does the {t} have?",
            "Tell me the colour of the {t}.",
        ),
    ),
    "room": (
        ("The {t} is in the {v}.", "The {t} is kept in the {v}."),
        (
            "Where is the {t}?",
            "In which room is the {t} kept?",
            "Which room holds the {t}?",
        ),
    ),
    "size": (
        ("The {t} is {v} in size.", "The size of the {t} is {v}."),
        (
            "How big is the {t}?",
            "What size is the {t}?",
            "Is the {t} tiny, small, big or huge?",
        ),
    ),
    "material": (
        ("The {t} is made of {v}.", "The material of the {t} is {v}."),
        (
            "What is the {t} made of?",
            "Which material is the {t} made from?",
            "Tell me the material of the {t}.",
        ),
    ),
    "owner": (
        ("The {t} belongs to {v}.", "{v} owns the {t}."),
        (
            "Who owns the {t}?",
            "Whose is the {t}?",
            "To whom does the {t} belong?",
        ),
    ),
    "neighbour": (
        ("The {t} is next to the {v}.", "The {t} and the {v} sit side by side."),
        (
            "What is next to the {t}?",
            "Which thing sits beside the {t}?",
            "Name the thing next to the {t}.",
        ),
    ),
}
_THING_VALUES: dict[str, tuple[str, ...]] = {
    "colour": COLOURS,
    "room": ROOMS,
    "size": SIZES,
    "material": MATERIALS,
    "owner": PEOPLE,
    "neighbour": THINGS,
}
_PERSON_FORMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "town": (
        ("{p} lives in {v}.", "The home town of {p} is {v}."),
        (
            "Where does {p} live?",
            "In which town does {p} live?",
            "What is the home town of {p}?",
        ),
    ),
    "friend": (
        ("{p} is a friend of {v}.", "{p} and {v} are friends."),
        (
            "Who is the friend of {p}?",
            "Who is {p} friends with?",
            "Name the friend of {p}.",
        ),
    ),
}
_PERSON_VALUES: dict[str, tuple[str, ...]] = {"town": TOWNS, "friend": PEOPLE}

_ARITH_FORMS: dict[str, tuple[Callable[[int, int], int], tuple[str, ...], tuple[str, ...]]] = {
    "plus": (
        lambda a, b: a + b,
        ("{a} plus {b} is {v}.", "The sum of {a} and {b} is {v}."),
        (
            "What is {a} plus {b}?",
            "How much is {a} plus {b}?",
            "What do you get when you add {a} and {b}?",
        ),
    ),
    "minus": (
        lambda a, b: a - b,
        ("{a} minus {b} is {v}.", "Take {b} from {a} and you get {v}."),
        (
            "What is {a} minus {b}?",
            "How much is {a} minus {b}?",
            "What is left when you take {b} from {a}?",
        ),
    ),
    "times": (
        lambda a, b: a * b,
        ("{a} times {b} is {v}.", "The product of {a} and {b} is {v}."),
        (
            "What is {a} times {b}?",
            "How much is {a} times {b}?",
            "What do you get when you multiply {a} by {b}?",
        ),
    ),
}


def _arith_operands() -> Iterator[tuple[str, int, int]]:
    """Yields (operation, a, b) for every arithmetic fact of the world."""
    for a in range(10):
        for b in range(10):
            yield "plus", a, b
    for a in range(12):
        for b in range(a + 1):
            yield "minus", a, b
    for a in range(1, 7):
        for b in range(1, 7):
            yield "times", a, b


def _question(form: str) -> str:
    return f"Question: {form} Answer:"


@cache
def world_facts(seed: int = WORLD_SEED) -> tuple[Fact, ...]:
    """Every fact about things and people, with its held-out question form."""
    world = build_world(seed)
    facts: list[Fact] = []
    for index, thing in enumerate(world.things):
        for attr_index, (kind, (statements, questions)) in enumerate(_THING_FORMS.items()):
            value = getattr(thing, kind)
            facts.append(
                Fact(
                    kind=kind,
                    key=f"{thing.name}.{kind}",
                    answer=value,
                    candidates=tuple(v for v in _THING_VALUES[kind] if v != thing.name),
                    statements=tuple(s.format(t=thing.name, v=value) for s in statements),
                    questions=tuple(_question(q.format(t=thing.name)) for q in questions),
                    held_out=(index + attr_index) % QUESTION_FORMS,
                )
            )
    for index, person in enumerate(world.people):
        for attr_index, (kind, (statements, questions)) in enumerate(_PERSON_FORMS.items()):
            value = getattr(person, kind)
            facts.append(
                Fact(
                    kind=kind,
                    key=f"{person.name}.{kind}",
                    answer=value,
                    candidates=tuple(v for v in _PERSON_VALUES[kind] if v != person.name),
                    statements=tuple(s.format(p=person.name, v=value) for s in statements),
                    questions=tuple(_question(q.format(p=person.name)) for q in questions),
                    held_out=(index + attr_index) % QUESTION_FORMS,
                )
            )
    return tuple(facts)


@cache
def arithmetic_facts() -> tuple[Fact, ...]:
    """Every small-number arithmetic fact, with its held-out question form."""
    operands = list(_arith_operands())
    results: dict[str, set[int]] = {}
    for operation, a, b in operands:
        results.setdefault(operation, set()).add(_ARITH_FORMS[operation][0](a, b))
    facts: list[Fact] = []
    for index, (operation, a, b) in enumerate(operands):
        compute, statements, questions = _ARITH_FORMS[operation]
        value = compute(a, b)
        # The nearest other results of the same operation: every candidate is a number the
        # corpus uses as an answer, so none is ruled out merely for being unfamiliar.
        nearest = sorted(results[operation] - {value}, key=lambda r: (abs(r - value), r))
        facts.append(
            Fact(
                kind=operation,
                key=f"{a}.{operation}.{b}",
                answer=str(value),
                candidates=(str(value), *(str(r) for r in nearest[:6])),
                statements=tuple(s.format(a=a, b=b, v=value) for s in statements),
                questions=tuple(_question(q.format(a=a, b=b)) for q in questions),
                held_out=index % QUESTION_FORMS,
            )
        )
    return tuple(facts)


def _training_texts(fact: Fact) -> list[str]:
    asked = [q for i, q in enumerate(fact.questions) if i != fact.held_out]
    return [*fact.statements, *(f"{q} {fact.answer}" for q in asked)]


@cache
def training_lines() -> tuple[str, ...]:
    """The training corpus: one sentence or question with its answer per line."""
    lines: list[str] = []
    for fact in (*world_facts(), *arithmetic_facts()):
        lines.extend(_training_texts(fact))
    return tuple(lines)


def corpus_digest() -> str:
    """A sha256 of the world version and the training corpus (changes force a rebuild)."""
    digest = hashlib.sha256(f"world-v{WORLD_VERSION}\n".encode())
    for line in training_lines():
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def multiple_choice_docs(facts: tuple[Fact, ...], seed: int) -> list[dict[str, object]]:
    """Turns facts into lm-eval multiple-choice documents asked in their held-out form.

    Args:
        facts: The facts to ask about.
        seed: Seeds the choice of distractors and the position of the right answer.

    Returns:
        One document per fact: ``id``, ``kind``, ``question``, ``choices`` (``N_CHOICES``
        values, one right) and ``answer`` (the index of the right choice).
    """
    rng = random.Random(seed)
    docs: list[dict[str, object]] = []
    for fact in facts:
        wrong = [c for c in fact.candidates if c != fact.answer]
        choices = [*rng.sample(wrong, N_CHOICES - 1), fact.answer]
        rng.shuffle(choices)
        docs.append(
            {
                "id": fact.key,
                "kind": fact.kind,
                "question": fact.questions[fact.held_out],
                "choices": choices,
                "answer": choices.index(fact.answer),
            }
        )
    return docs


def _asked(fact: Fact) -> str:
    """A fact's held-out question form followed by its answer."""
    return f"{fact.questions[fact.held_out]} {fact.answer}"


def heldout_documents(count: int = 50, seed: int = WORLD_SEED) -> list[str]:
    """Held-out text: questions in their held-out forms, with answers, grouped by subject.

    No line of these documents is in the training corpus, yet every line is answerable from
    it, so their perplexity measures what the model knows rather than how novel the prose is.

    Args:
        count: How many documents: one per thing, one per pair of people, then batches of
            eight arithmetic questions.
        seed: Seeds which arithmetic questions fill the arithmetic documents.

    Returns:
        ``count`` documents, each a few question lines joined by newlines.
    """
    by_subject: dict[str, list[Fact]] = {}
    for fact in world_facts():
        by_subject.setdefault(fact.key.split(".")[0], []).append(fact)
    world = build_world()
    docs = ["\n".join(_asked(f) for f in by_subject[t.name]) for t in world.things]
    names = [p.name for p in world.people]
    for first, second in zip(names[0::2], names[1::2], strict=True):
        docs.append("\n".join(_asked(f) for f in by_subject[first] + by_subject[second]))
    rng = random.Random(seed)
    arithmetic = arithmetic_facts()
    while len(docs) < count:
        docs.append("\n".join(_asked(f) for f in rng.sample(arithmetic, 8)))
    return docs[:count]


def calibration_texts(n: int, seed: int = 0) -> list[str]:
    """Sentences from the training distribution, for example for pruning calibration.

    Args:
        n: How many texts.
        seed: Seeds which lines are drawn and how they are grouped.

    Returns:
        ``n`` texts, each a few training lines joined by spaces.
    """
    rng = random.Random(seed)
    lines = training_lines()
    return [" ".join(rng.sample(lines, 4)) for _ in range(n)]
