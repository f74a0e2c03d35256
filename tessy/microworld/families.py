"""Problem families of the microworld contest domain.

Each family function draws the surface of one problem (story, wording, limits) from a seeded RNG and
returns a `Draft`: the statement parts, a test-case sampler that computes expected outputs directly
from the drawn data (independently of the solution source), the reference solution, an optional
buggy solution (the student's typical mistake) and the plan clauses the reasoning traces are built
from. Plan clauses are neutral capability text: they never contain a style marker of either model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from math import gcd
from random import Random

MOD = 10**9 + 7

NAMES = [
    "Alice", "Bob", "Chef", "Mira", "Tom", "Nadia", "Igor", "Lena",
    "Omar", "Priya", "Kenji", "Sofia", "Dmitri", "Ana", "Yuki", "Marco",
]  # fmt: skip
THINGS = ["coins", "apples", "stones", "cards", "books", "points", "tickets", "marbles", "candies", "boxes"]
PLACES = ["a museum", "a bakery", "a library", "a garden", "a harbor", "a castle", "a school", "a market"]


@dataclass(frozen=True)
class Plan:
    """Capability content of a solution, shared by both reasoning styles.

    `goal`, `method` and `implementation` are verb phrases, `key`, `buggy_key`, `edge` and `sample`
    are clauses, `complexity` is a noun phrase; all start lowercase and carry no final period.
    """

    goal: str
    method: str
    key: str
    edge: str
    complexity: str
    implementation: str
    buggy_key: str | None = None


@dataclass(frozen=True)
class Draft:
    title: str
    legend: str
    input_format: str
    output_format: str
    constraints: tuple[str, ...]
    cases: Callable[[Random, bool], tuple[str, str]]  # (rng, small) -> (input, expected output)
    edge_cases: tuple[tuple[str, str], ...]  # always among the hidden tests; they catch the bug
    code: str
    plan: Plan
    buggy_code: str | None = None


@dataclass(frozen=True)
class Family:
    name: str
    difficulty: int  # 1 easy .. 3 hard
    draw: Callable[[Random], Draft]


def _program(*body: str, imports: tuple[str, ...] = ()) -> str:
    """A stdin -> stdout program: imports, then `main()` reading all tokens into `data`."""
    head = "".join(f"{line}\n" for line in ("import sys", *imports))
    lines = "".join(f"    {line}\n" for line in ("data = sys.stdin.read().split()", *body))
    return f"{head}\n\ndef main():\n{lines}\n\nmain()\n"


_LIST_FORMAT = "The first line contains an integer N. The second line contains N integers a_1, ..., a_N."


def _pair_list_format(second: str) -> str:
    return f"The first line contains two integers N and {second}. The second line contains a_1, ..., a_N."


_READ_LIST = ("n = int(data[0])", "a = list(map(int, data[1:1 + n]))")
_READ_N_K_LIST = ("n, k = int(data[0]), int(data[1])", "a = list(map(int, data[2:2 + n]))")


def _limits(rng: Random, signed: bool) -> tuple[int, int, int]:
    """(n_max, low, high) for a list problem."""
    n_max = rng.choice([100, 1000, 10**5, 2 * 10**5])
    high = rng.choice([100, 1000, 10**6, 10**9])
    return n_max, (-high if signed else 1), high


def _pow10(x: int) -> str:
    """Write limits the way statements do: 100000 -> 10^5, 200000 -> 2 * 10^5."""
    s = str(x)
    zeros = len(s) - len(s.rstrip("0"))
    if zeros < 3:
        return s
    lead = s[: len(s) - zeros]
    return f"10^{zeros}" if lead == "1" else f"{lead} * 10^{zeros}"


def _values(rng: Random, n: int, low: int, high: int, small: bool) -> list[int]:
    # Samples and most hidden tests use small magnitudes so statements stay short; limits still hold.
    cap = 20 if small else 1000
    return [rng.randint(max(low, -cap), min(high, cap)) for _ in range(n)]


def _size(rng: Random, small: bool, n_max: int, least: int = 1) -> int:
    return rng.randint(max(least, 3), 6) if small else rng.randint(least, min(n_max, 12))


def _list_input(n: int, a: list[int], *head: int) -> str:
    return f"{' '.join(map(str, (n, *head)))}\n{' '.join(map(str, a))}\n"


def _name_things(rng: Random) -> tuple[str, str]:
    return rng.choice(NAMES), rng.choice(THINGS)


# ---------------------------------------------------------------- difficulty 1


def sum_list(rng: Random) -> Draft:
    name, things = _name_things(rng)
    n_max, low, high = _limits(rng, signed=rng.random() < 0.5)
    legend = rng.choice(
        [
            f"{name} has N bags of {things}. The i-th bag holds a_i {things} (a value can be negative "
            f"when {name} owes them). Find the total number of {things}.",
            "You are given N integers a_1, a_2, ..., a_N. Print their sum.",
            f"{name} wrote N integers on a board while visiting {rng.choice(PLACES)}. "
            f"Compute the sum of all the numbers on the board.",
        ]
    )

    def cases(r: Random, small: bool) -> tuple[str, str]:
        n = _size(r, small, n_max)
        a = _values(r, n, low, high, small)
        return _list_input(n, a), f"{sum(a)}\n"

    return Draft(
        title=rng.choice(["Sum It Up", f"Counting {things.title()}", "Total Weight", "Board Sum"]),
        legend=legend,
        input_format=_LIST_FORMAT,
        output_format="Print a single integer: the sum of the N integers.",
        constraints=(f"1 <= N <= {_pow10(n_max)}", f"{_pow10(low)} <= a_i <= {_pow10(high)}"),
        cases=cases,
        edge_cases=((_list_input(1, [low]), f"{low}\n"),),
        code=_program(*_READ_LIST, "print(sum(a))"),
        plan=Plan(
            goal="print the sum of the N integers",
            method="read N and the N values, then add them up",
            key="the built-in sum over the list gives the answer directly",
            edge="N can be 1 and the values can be negative, which sum handles",
            complexity="O(N) time",
            implementation="read every token from stdin, convert the values to int and print sum(a)",
        ),
    )


def max_min(rng: Random) -> Draft:
    name, things = _name_things(rng)
    n_max, low, high = _limits(rng, signed=rng.random() < 0.5)
    largest = rng.random() < 0.5
    word, fn = ("largest", "max") if largest else ("smallest", "min")
    legend = rng.choice(
        [
            f"{name} measured N {things}; the i-th one has weight a_i. Find the {word} weight.",
            f"You are given a sequence of N integers. Print the {word} element of the sequence.",
            f"There are N towers in {rng.choice(PLACES)}, the i-th of height a_i. "
            f"{name} wants to know the {word} height.",
        ]
    )

    def cases(r: Random, small: bool) -> tuple[str, str]:
        n = _size(r, small, n_max)
        a = _values(r, n, low, high, small)
        return _list_input(n, a), f"{max(a) if largest else min(a)}\n"

    return Draft(
        title=rng.choice([f"The {word.title()} One", "Extreme Value", f"{name}'s Towers", "Extremes"]),
        legend=legend,
        input_format=_LIST_FORMAT,
        output_format=f"Print the {word} of the N integers.",
        constraints=(f"1 <= N <= {_pow10(n_max)}", f"{_pow10(low)} <= a_i <= {_pow10(high)}"),
        cases=cases,
        edge_cases=((_list_input(2, [high, low]), f"{high if largest else low}\n"),),
        code=_program(*_READ_LIST, f"print({fn}(a))"),
        plan=Plan(
            goal=f"print the {word} of the N integers",
            method="scan the list once and keep the best value seen",
            key=f"{fn}(a) returns exactly that value",
            edge="all values can be equal or negative, so no fixed starting value is safe",
            complexity="O(N) time",
            implementation=f"read the tokens, build the list a and print {fn}(a)",
        ),
    )


def count_matches(rng: Random) -> Draft:
    name, things = _name_things(rng)
    n_max, low, high = _limits(rng, signed=False)
    equal = rng.random() < 0.5
    relation, op = ("equal to K", "==") if equal else ("strictly greater than K", ">")
    legend = rng.choice(
        [
            f"{name} has N boxes of {things}, the i-th box holds a_i {things}. "
            f"How many boxes hold a number of {things} {relation}?",
            f"Given N integers and an integer K, count how many of the integers are {relation}.",
            f"At {rng.choice(PLACES)} there are N visitors with ticket numbers a_1, ..., a_N. "
            f"Count the visitors whose ticket number is {relation}.",
        ]
    )

    def cases(r: Random, small: bool) -> tuple[str, str]:
        n = _size(r, small, n_max)
        a = [r.randint(1, 6) for _ in range(n)] if small else _values(r, n, 1, min(high, 9), False)
        k = r.choice(a) if r.random() < 0.7 else r.randint(1, 9)
        count = sum(1 for x in a if (x == k if equal else x > k))
        return _list_input(n, a, k), f"{count}\n"

    return Draft(
        title=rng.choice(["Matching Boxes", "Count the Tickets", f"{name} Counts", "How Many?"]),
        legend=legend,
        input_format=_pair_list_format("K"),
        output_format=f"Print the number of integers {relation}.",
        constraints=(f"1 <= N <= {_pow10(n_max)}", f"1 <= a_i, K <= {_pow10(high)}"),
        cases=cases,
        edge_cases=((_list_input(3, [1, 2, 3], 9), "0\n"),),
        code=_program(*_READ_N_K_LIST, f"print(sum(1 for x in a if x {op} k))"),
        plan=Plan(
            goal=f"count how many of the N values are {relation}",
            method="read N and K, then test every value against K",
            key=f"each value x with x {op} K adds one to the count",
            edge="the answer can be 0 when no value matches",
            complexity="O(N) time",
            implementation=f"read n and k from the first two tokens and print sum(1 for x in a if x {op} k)",
        ),
    )


def _word(r: Random, n: int) -> str:
    return "".join(r.choice("abcdefghij") for _ in range(n))


def _palindrome(r: Random, n: int) -> str:
    half = _word(r, n // 2)
    return half + (_word(r, 1) if n % 2 else "") + half[::-1]


def reverse_string(rng: Random) -> Draft:
    name = rng.choice(NAMES)
    n_max = rng.choice([100, 1000, 10**5])
    legend = rng.choice(
        [
            f"{name} wrote a secret word S and wants to read it backwards. Print S reversed.",
            "You are given a string S of lowercase English letters. Print the string S reversed.",
            f"A sign at {rng.choice(PLACES)} was painted in mirror order. Given the painted text S, "
            "print the text read from right to left.",
        ]
    )

    def cases(r: Random, small: bool) -> tuple[str, str]:
        s = _word(r, _size(r, small, n_max))
        return f"{s}\n", f"{s[::-1]}\n"

    return Draft(
        title=rng.choice(["Mirror Word", "Backwards", f"{name}'s Secret", "Reverse the Sign"]),
        legend=legend,
        input_format="A single line contains the string S.",
        output_format="Print S reversed.",
        constraints=(f"1 <= |S| <= {_pow10(n_max)}", "S consists of lowercase English letters"),
        cases=cases,
        edge_cases=(("a\n", "a\n"),),
        code=_program("s = data[0]", "print(s[::-1])"),
        plan=Plan(
            goal="print the string S written backwards",
            method="read S as one token and reverse it",
            key="slicing with s[::-1] produces the reversed string",
            edge="a string of length 1 stays the same",
            complexity="O(|S|) time",
            implementation="read the first token as s and print s[::-1]",
        ),
    )


def palindrome(rng: Random) -> Draft:
    name = rng.choice(NAMES)
    n_max = rng.choice([100, 1000, 10**5])
    legend = rng.choice(
        [
            f"{name} calls a word beautiful if it reads the same from left to right and from right to left. "
            "Is the word S beautiful?",
            "Determine whether the given string S is a palindrome.",
            f"The gate of {rng.choice(PLACES)} opens only for palindromes. Will it open for the word S?",
        ]
    )

    def cases(r: Random, small: bool) -> tuple[str, str]:
        n = _size(r, small, n_max)
        s = _palindrome(r, n) if r.random() < 0.5 else _word(r, n)
        return f"{s}\n", "YES\n" if s == s[::-1] else "NO\n"

    return Draft(
        title=rng.choice(["Beautiful Word", "Palindrome Gate", f"{name} and Symmetry", "Same Both Ways"]),
        legend=legend,
        input_format="A single line contains the string S.",
        output_format='Print "YES" if S is a palindrome, otherwise print "NO".',
        constraints=(f"1 <= |S| <= {_pow10(n_max)}", "S consists of lowercase English letters"),
        cases=cases,
        edge_cases=(("z\n", "YES\n"), ("ab\n", "NO\n")),
        code=_program("s = data[0]", 'print("YES" if s == s[::-1] else "NO")'),
        plan=Plan(
            goal="decide whether the string S reads the same forwards and backwards",
            method="compare S with its reverse",
            key="S is a palindrome exactly when s == s[::-1]",
            edge="a single character is always a palindrome",
            complexity="O(|S|) time",
            implementation="read s and print YES if s == s[::-1], otherwise NO",
        ),
    )


# ---------------------------------------------------------------- difficulty 2


def gcd_lcm(rng: Random) -> Draft:
    name, things = _name_things(rng)
    high = rng.choice([1000, 10**6, 10**9])
    want_gcd = rng.random() < 0.5
    what = "greatest common divisor" if want_gcd else "least common multiple"
    legend = rng.choice(
        [
            f"Given two positive integers A and B, print their {what}.",
            f"{name} has A red {things} and B blue {things}. Print the {what} of A and B.",
            f"Two lighthouses near {rng.choice(PLACES)} flash every A and every B seconds. "
            f"{name} asks for the {what} of A and B.",
        ]
    )

    def cases(r: Random, small: bool) -> tuple[str, str]:
        g = r.randint(1, 6 if small else 30)
        a, b = g * r.randint(1, 9 if small else 40), g * r.randint(1, 9 if small else 40)
        return f"{a} {b}\n", f"{gcd(a, b) if want_gcd else a * b // gcd(a, b)}\n"

    read = "a, b = int(data[0]), int(data[1])"
    if want_gcd:
        code, buggy = "print(gcd(a, b))", "print(min(a, b))"
        key = "math.gcd(a, b) is the answer"
        buggy_key = "the smaller of A and B divides both, so min(a, b) is the answer"
        edge = ("4 6\n", "2\n")
    else:
        code, buggy = "print(a * b // gcd(a, b))", "print(a * b)"
        key = "lcm(A, B) = A * B // gcd(A, B)"
        buggy_key = "lcm(A, B) is simply A * B"
        edge = ("4 6\n", "12\n")
    return Draft(
        title=rng.choice(["Lighthouses", "Divisors Meet", f"{name}'s Pair", "Two Numbers"]),
        legend=legend,
        input_format="A single line contains two integers A and B.",
        output_format=f"Print the {what} of A and B.",
        constraints=(f"1 <= A, B <= {_pow10(high)}",),
        cases=cases,
        edge_cases=(edge,),
        code=_program(read, code, imports=("from math import gcd",)),
        buggy_code=_program(read, buggy, imports=("from math import gcd",)),
        plan=Plan(
            goal=f"print the {what} of A and B",
            method="use the Euclidean algorithm from math.gcd",
            key=key,
            buggy_key=buggy_key,
            edge="when A equals B the answer is A itself",
            complexity="O(log(min(A, B))) time",
            implementation="read a and b, import gcd from math and print the result",
        ),
    )


def prefix_sums(rng: Random) -> Draft:
    name, things = _name_things(rng)
    n_max, low, high = _limits(rng, signed=False)
    legend = rng.choice(
        [
            f"{name} keeps N shelves of {things} in a row; shelf i holds a_i {things}. "
            f"Answer Q questions: how many {things} are on shelves L through R?",
            "You are given an array a_1, ..., a_N and Q queries. Each query gives L and R; "
            "print a_L + a_(L+1) + ... + a_R.",
            f"Along the road to {rng.choice(PLACES)} there are N houses with a_i people each. "
            "For each of Q queries (L, R), report the number of people in houses L..R.",
        ]
    )

    def cases(r: Random, small: bool) -> tuple[str, str]:
        n = _size(r, small, n_max)
        a = _values(r, n, low, high, small)
        queries = [sorted((r.randint(1, n), r.randint(1, n))) for _ in range(r.randint(1, 3 if small else 6))]
        lines = [f"{n} {len(queries)}", " ".join(map(str, a)), *(f"{lo} {hi}" for lo, hi in queries)]
        answers = [sum(a[lo - 1 : hi]) for lo, hi in queries]
        return "\n".join(lines) + "\n", "".join(f"{x}\n" for x in answers)

    def program(lower: str) -> str:
        return _program(
            "n, q = int(data[0]), int(data[1])",
            "a = list(map(int, data[2:2 + n]))",
            "prefix = [0] * (n + 1)",
            "for i in range(n):",
            "    prefix[i + 1] = prefix[i] + a[i]",
            "out = []",
            "pos = 2 + n",
            "for _ in range(q):",
            "    l, r = int(data[pos]), int(data[pos + 1])",
            "    pos += 2",
            f"    out.append(prefix[r] - prefix[{lower}])",
            'print("\\n".join(map(str, out)))',
        )

    return Draft(
        title=rng.choice(["Shelf Queries", "Range Sum", f"{name}'s Road", "Segment Totals"]),
        legend=legend,
        input_format="The first line contains N and Q. The second line contains a_1, ..., a_N. "
        "Each of the next Q lines contains two integers L and R.",
        output_format="For each query print the sum on its own line.",
        constraints=(f"1 <= N, Q <= {_pow10(n_max)}", f"1 <= a_i <= {_pow10(high)}", "1 <= L <= R <= N"),
        cases=cases,
        edge_cases=(("3 2\n1 2 3\n1 3\n2 2\n", "6\n2\n"),),
        code=program("l - 1"),
        buggy_code=program("l"),
        plan=Plan(
            goal="answer Q queries, each asking for the sum of a_L through a_R",
            method="build prefix sums so that each query takes constant time",
            key="with prefix[i] = a_1 + ... + a_i, the sum of a segment is prefix[R] - prefix[L - 1]",
            buggy_key="with prefix[i] = a_1 + ... + a_i, the sum of a segment is prefix[R] - prefix[L]",
            edge="L can equal R, and L = 1 uses prefix[0] = 0",
            complexity="O(N + Q) time",
            implementation="fill prefix of length N + 1, answer each query from it, one result per line",
        ),
    )


def sort_twist(rng: Random) -> Draft:
    name, things = _name_things(rng)
    n_max, low, high = _limits(rng, signed=True)
    descending = rng.random() < 0.5
    if descending:
        order = "in non-increasing order"
        key_fn = lambda x: -x  # noqa: E731
        sort_line = "a.sort(reverse=True)"
        key = "a.sort(reverse=True) gives the non-increasing order"
    else:
        order = "by absolute value, breaking ties by the smaller value"
        key_fn = lambda x: (abs(x), x)  # noqa: E731
        sort_line = "a.sort(key=lambda x: (abs(x), x))"
        key = "the sort key (abs(x), x) orders by absolute value and then by value"
    legend = rng.choice(
        [
            f"{name} has N {things} with values a_1, ..., a_N. Print the values sorted {order}.",
            f"Sort the given N integers {order} and print them.",
            f"The judges at {rng.choice(PLACES)} want the N scores listed {order}. Help {name} print them.",
        ]
    )

    def cases(r: Random, small: bool) -> tuple[str, str]:
        n = _size(r, small, n_max, least=2)
        a = _values(r, n, low, high, small)
        return _list_input(n, a), " ".join(map(str, sorted(a, key=key_fn))) + "\n"

    edge = [-3, 1, 2] if descending else [3, -2, 1]
    return Draft(
        title=rng.choice(["Twisted Sort", "Ordering Scores", f"{name} Sorts", "Line Them Up"]),
        legend=legend,
        input_format=_LIST_FORMAT,
        output_format=f"Print the N integers sorted {order}, separated by spaces.",
        constraints=(f"1 <= N <= {_pow10(n_max)}", f"{_pow10(low)} <= a_i <= {_pow10(high)}"),
        cases=cases,
        edge_cases=((_list_input(3, edge), " ".join(map(str, sorted(edge, key=key_fn))) + "\n"),),
        code=_program(*_READ_LIST, sort_line, 'print(" ".join(map(str, a)))'),
        buggy_code=_program(*_READ_LIST, "a.sort()", 'print(" ".join(map(str, a)))'),
        plan=Plan(
            goal=f"print the N values sorted {order}",
            method="sort the list with the right order",
            key=key,
            buggy_key="a plain a.sort() already gives the required order",
            edge="equal values may appear, and the order among them does not matter",
            complexity="O(N log N) time",
            implementation="sort the list and print the values separated by spaces",
        ),
    )


def most_frequent(rng: Random) -> Draft:
    name, things = _name_things(rng)
    n_max, _, high = _limits(rng, signed=False)
    legend = rng.choice(
        [
            f"{name} recorded the colors of N {things} as numbers a_1, ..., a_N. Which color is the most "
            "common? If several colors are equally common, print the smallest one.",
            "Find the value that occurs most often in the array. On a tie, print the smallest such value.",
            f"Visitors of {rng.choice(PLACES)} voted for their favourite exhibit. Print the exhibit with the "
            "most votes; on a tie print the smallest exhibit number.",
        ]
    )

    def cases(r: Random, small: bool) -> tuple[str, str]:
        n = _size(r, small, n_max)
        a = [r.randint(1, 5) for _ in range(n)]
        count = Counter(a)
        best = max(count.values())
        return _list_input(n, a), f"{min(x for x in count if count[x] == best)}\n"

    head = (*_READ_LIST, "count = Counter(a)")
    counter = ("from collections import Counter",)
    return Draft(
        title=rng.choice(["Popular Color", "Top Vote", f"{name}'s Survey", "Most Common"]),
        legend=legend,
        input_format=_LIST_FORMAT,
        output_format="Print the most frequent value (the smallest one on ties).",
        constraints=(f"1 <= N <= {_pow10(n_max)}", f"1 <= a_i <= {_pow10(high)}"),
        cases=cases,
        edge_cases=((_list_input(4, [5, 5, 2, 2]), "2\n"),),
        code=_program(
            *head,
            "best = max(count.values())",
            "print(min(x for x in count if count[x] == best))",
            imports=counter,
        ),
        buggy_code=_program(*head, "print(count.most_common(1)[0][0])", imports=counter),
        plan=Plan(
            goal="print the value that appears most often, choosing the smallest such value on ties",
            method="count every value with a Counter",
            key="among the values with the highest count, the answer is the minimum",
            buggy_key="count.most_common(1) gives the answer",
            edge="several values can share the highest count",
            complexity="O(N) time",
            implementation="build the Counter, find the best count and print the smallest value having it",
        ),
    )


def kth_smallest(rng: Random) -> Draft:
    name, things = _name_things(rng)
    n_max, low, high = _limits(rng, signed=rng.random() < 0.5)
    legend = rng.choice(
        [
            f"{name} lines up N {things} with sizes a_1, ..., a_N. What is the K-th smallest size?",
            "Given N integers and an integer K, print the K-th smallest of them (counting duplicates).",
            f"N runners finished a race near {rng.choice(PLACES)} with times a_1, ..., a_N. "
            "Print the K-th smallest time.",
        ]
    )

    def cases(r: Random, small: bool) -> tuple[str, str]:
        n = _size(r, small, n_max)
        a = _values(r, n, low, high, small)
        k = r.randint(1, n)
        return _list_input(n, a, k), f"{sorted(a)[k - 1]}\n"

    return Draft(
        title=rng.choice(["K-th Place", "Order Statistic", f"{name}'s Race", "Pick the K-th"]),
        legend=legend,
        input_format=_pair_list_format("K"),
        output_format="Print the K-th smallest value.",
        constraints=(f"1 <= K <= N <= {_pow10(n_max)}", f"{_pow10(low)} <= a_i <= {_pow10(high)}"),
        cases=cases,
        edge_cases=((_list_input(3, [3, 1, 2], 3), "3\n"),),
        code=_program(*_READ_N_K_LIST, "a.sort()", "print(a[k - 1])"),
        buggy_code=_program(*_READ_N_K_LIST, "a.sort()", "print(a[k])"),
        plan=Plan(
            goal="print the K-th smallest of the N values",
            method="sort the values in non-decreasing order",
            key="the K-th smallest is a[K - 1] after sorting, because lists are 0-indexed",
            buggy_key="the K-th smallest is a[K] after sorting",
            edge="K can be 1 or N, and values can repeat",
            complexity="O(N log N) time",
            implementation="read n, k and the list, sort it and print the element at index k - 1",
        ),
    )


# ---------------------------------------------------------------- difficulty 3


def pair_sum(rng: Random) -> Draft:
    name, things = _name_things(rng)
    n_max, _, high = _limits(rng, signed=False)
    legend = rng.choice(
        [
            f"{name} has N {things} with prices a_1, ..., a_N and exactly X money. Can {name} buy two "
            "different items whose prices add up to exactly X?",
            "Given N integers and a target X, decide whether there are two indices i < j with a_i + a_j = X.",
            f"Two friends want to enter {rng.choice(PLACES)} together; the pass costs X. Among N tickets "
            "with values a_1, ..., a_N, is there a pair of different tickets with total value X?",
        ]
    )

    def cases(r: Random, small: bool) -> tuple[str, str]:
        n = _size(r, small, n_max, least=2)
        a = [r.randint(1, 20) for _ in range(n)]
        x = r.choice(a) * 2 if r.random() < 0.3 else r.randint(2, 40)
        ok = any(a[i] + a[j] == x for i in range(n) for j in range(i + 1, n))
        return _list_input(n, a, x), "YES\n" if ok else "NO\n"

    def program(cond: str) -> str:
        return _program(
            "n, x = int(data[0]), int(data[1])",
            "a = sorted(map(int, data[2:2 + n]))",
            "i, j = 0, n - 1",
            "found = False",
            f"while {cond}:",
            "    s = a[i] + a[j]",
            "    if s == x:",
            "        found = True",
            "        break",
            "    if s < x:",
            "        i += 1",
            "    else:",
            "        j -= 1",
            'print("YES" if found else "NO")',
        )

    step = "compare a[i] + a[j] with X and move i up if the sum is small or j down if it is large"
    return Draft(
        title=rng.choice(["Two Tickets", "Pair Sum", f"{name} Goes Shopping", "Exact Change"]),
        legend=legend,
        input_format=_pair_list_format("X"),
        output_format='Print "YES" if such a pair exists, otherwise print "NO".',
        constraints=(f"2 <= N <= {_pow10(n_max)}", f"1 <= a_i, X <= {_pow10(high)}"),
        cases=cases,
        edge_cases=((_list_input(3, [1, 5, 8], 10), "NO\n"), (_list_input(2, [4, 4], 8), "YES\n")),
        code=program("i < j"),
        buggy_code=program("i <= j"),
        plan=Plan(
            goal="decide whether two different positions hold values that add up to X",
            method="sort the values and move two pointers from both ends",
            key=f"while i < j, {step}",
            buggy_key=f"while i <= j, {step}",
            edge="one element must not be used twice, for example when X is twice a single value",
            complexity="O(N log N) time for the sort and O(N) for the scan",
            implementation="sort a, run the two-pointer loop and print YES or NO",
        ),
    )


def climb_stairs(rng: Random) -> Draft:
    name = rng.choice(NAMES)
    n_max = rng.choice([1000, 10**5, 10**6])
    jumps = rng.choice([2, 3])
    moves = "1 or 2 steps" if jumps == 2 else "1, 2 or 3 steps"
    legend = rng.choice(
        [
            f"{name} climbs a staircase of N steps, taking {moves} at a time. In how many different ways can "
            f"{name} reach the top? Print the answer modulo 10^9 + 7.",
            f"Count the sequences of moves of {moves} with a total of exactly N, modulo 10^9 + 7.",
            f"The tower of {rng.choice(PLACES)} has N stairs. A visitor climbs {moves} per move. "
            "How many ways are there to reach the top, modulo 10^9 + 7?",
        ]
    )

    def count(n: int) -> int:
        dp = [1] + [0] * n
        for i in range(1, n + 1):
            dp[i] = sum(dp[i - s] for s in range(1, jumps + 1) if i >= s) % MOD
        return dp[n]

    def cases(r: Random, small: bool) -> tuple[str, str]:
        n = r.randint(2, 6) if small else r.randint(1, 60)
        return f"{n}\n", f"{count(n)}\n"

    def program(answer: str) -> str:
        extra = []
        for s in range(2, jumps + 1):
            extra += [f"    if i >= {s}:", f"        dp[i] += dp[i - {s}]"]
        return _program(
            "n = int(data[0])",
            "MOD = 10**9 + 7",
            "dp = [0] * (n + 1)",
            "dp[0] = 1",
            "for i in range(1, n + 1):",
            "    dp[i] = dp[i - 1]",
            *extra,
            "    dp[i] %= MOD",
            f"print({answer})",
        )

    terms = " + ".join(f"dp[i - {s}]" for s in range(1, jumps + 1))
    return Draft(
        title=rng.choice(["Stairway", "Climbing Ways", f"{name} Climbs", "Tower Steps"]),
        legend=legend,
        input_format="A single line contains an integer N.",
        output_format="Print the number of ways modulo 10^9 + 7.",
        constraints=(f"1 <= N <= {_pow10(n_max)}",),
        cases=cases,
        edge_cases=(("1\n", "1\n"), ("3\n", f"{count(3)}\n")),
        code=program("dp[n]"),
        buggy_code=program("dp[n - 1]"),
        plan=Plan(
            goal=f"count the ways to climb N steps taking {moves} at a time, modulo 10^9 + 7",
            method="use dynamic programming over the number of steps climbed",
            key=f"dp[0] = 1 and dp[i] = {terms}, and the answer is dp[N]",
            buggy_key=f"dp[0] = 1 and dp[i] = {terms}, and the answer is dp[N - 1]",
            edge="N = 1 has exactly one way",
            complexity="O(N) time",
            implementation="fill dp from 1 to N, adding only terms with an index >= 0, modulo 10^9 + 7",
        ),
    )


def grid_paths(rng: Random) -> Draft:
    name = rng.choice(NAMES)
    size_max = rng.choice([100, 500, 1000])
    legend = rng.choice(
        [
            f"{name} walks through a grid of R rows and C columns from the top-left cell to the bottom-right "
            "cell, moving only right or down. Cells marked '#' are walls. Count the paths modulo 10^9 + 7.",
            "Count the paths from the top-left to the bottom-right corner of the grid that move only right "
            "or down and never enter a '#' cell. Print the count modulo 10^9 + 7.",
            f"The garden maze of {rng.choice(PLACES)} is an R x C grid with hedges '#'. A robot goes only "
            "right or down. How many routes lead from the top-left to the bottom-right cell, mod 10^9 + 7?",
        ]
    )

    def count(grid: list[str]) -> int:
        rows, cols = len(grid), len(grid[0])
        ways = [[0] * (cols + 1) for _ in range(rows + 1)]
        for i in range(rows):
            for j in range(cols):
                if grid[i][j] == "#":
                    continue
                ways[i + 1][j + 1] = 1 if i == j == 0 else (ways[i][j + 1] + ways[i + 1][j]) % MOD
        return ways[rows][cols]

    def cases(r: Random, small: bool) -> tuple[str, str]:
        rows, cols = (r.randint(2, 3), r.randint(2, 4)) if small else (r.randint(1, 6), r.randint(1, 6))
        grid = ["".join("#" if r.random() < 0.2 else "." for _ in range(cols)) for _ in range(rows)]
        return f"{rows} {cols}\n" + "".join(f"{row}\n" for row in grid), f"{count(grid)}\n"

    def program(check_walls: bool) -> str:
        wall = ('        if grid[i][j] == "#":', "            continue") if check_walls else ()
        return _program(
            "r, c = int(data[0]), int(data[1])",
            "grid = data[2:2 + r]",
            "MOD = 10**9 + 7",
            "dp = [[0] * c for _ in range(r)]",
            "for i in range(r):",
            "    for j in range(c):",
            *wall,
            "        if i == 0 and j == 0:",
            "            dp[i][j] = 1",
            "            continue",
            "        ways = 0",
            "        if i > 0:",
            "            ways += dp[i - 1][j]",
            "        if j > 0:",
            "            ways += dp[i][j - 1]",
            "        dp[i][j] = ways % MOD",
            "print(dp[r - 1][c - 1])",
        )

    return Draft(
        title=rng.choice(["Garden Maze", "Grid Walks", f"{name}'s Path", "Right and Down"]),
        legend=legend,
        input_format="The first line contains R and C. Each of the next R lines contains C characters, "
        "'.' for a free cell and '#' for a wall.",
        output_format="Print the number of paths modulo 10^9 + 7.",
        constraints=(f"1 <= R, C <= {_pow10(size_max)}",),
        cases=cases,
        edge_cases=(("2 2\n.#\n..\n", "1\n"), ("1 2\n#.\n", "0\n")),
        code=program(True),
        buggy_code=program(False),
        plan=Plan(
            goal="count the paths from the top-left to the bottom-right cell moving only right or down "
            "and avoiding '#' cells, modulo 10^9 + 7",
            method="use dynamic programming over the grid in row-major order",
            key="a '#' cell gets 0 ways, and any other cell gets the ways from above plus from the left",
            buggy_key="every cell gets the ways from above plus from the left",
            edge="a blocked start or end cell gives 0",
            complexity="O(R * C) time",
            implementation="read the grid rows as strings, fill dp row by row and print dp[R - 1][C - 1]",
        ),
    )


def bracket_balance(rng: Random) -> Draft:
    name = rng.choice(NAMES)
    n_max = rng.choice([1000, 10**5, 10**6])
    legend = rng.choice(
        [
            f"{name} typed a string S of round brackets. Is it a balanced bracket sequence?",
            "A bracket sequence is balanced if every '(' can be matched with a later ')'. "
            "Check whether the given sequence S is balanced.",
            f"The guards of {rng.choice(PLACES)} send signals as strings of '(' and ')'. "
            "A signal is valid when its brackets are balanced. Is S valid?",
        ]
    )

    def balanced(s: str) -> bool:
        depth = 0
        for ch in s:
            depth += 1 if ch == "(" else -1
            if depth < 0:
                return False
        return depth == 0

    def cases(r: Random, small: bool) -> tuple[str, str]:
        half = r.randint(1, 3 if small else 8)
        chars = list("(" * half + ")" * half)
        r.shuffle(chars)
        if r.random() < 0.3:
            chars.append(r.choice("()"))
        s = "".join(chars)
        return f"{s}\n", "YES\n" if balanced(s) else "NO\n"

    def program(check_prefix: bool) -> str:
        loop = ("for ch in s:", '    depth += 1 if ch == "(" else -1')
        if check_prefix:
            guard = ("    if depth < 0:", "        ok = False", "        break")
            verdict = 'print("YES" if ok and depth == 0 else "NO")'
            return _program("s = data[0]", "depth = 0", "ok = True", *loop, *guard, verdict)
        return _program("s = data[0]", "depth = 0", *loop, 'print("YES" if depth == 0 else "NO")')

    return Draft(
        title=rng.choice(["Balanced Signal", "Brackets", f"{name}'s Parentheses", "Matching Pairs"]),
        legend=legend,
        input_format="A single line contains the string S.",
        output_format='Print "YES" if S is balanced, otherwise print "NO".',
        constraints=(f"1 <= |S| <= {_pow10(n_max)}", "S consists of '(' and ')'"),
        cases=cases,
        edge_cases=((")(\n", "NO\n"), ("(())\n", "YES\n")),
        code=program(True),
        buggy_code=program(False),
        plan=Plan(
            goal="decide whether the bracket string S is balanced",
            method="scan S and track the current depth",
            key="add 1 for '(' and subtract 1 for ')', the depth must never drop below 0 and must end at 0",
            buggy_key="add 1 for '(' and subtract 1 for ')', the string is balanced when the depth ends at 0",
            edge="a string of odd length can never be balanced",
            complexity="O(|S|) time",
            implementation="loop over the characters, update depth, and print YES or NO",
        ),
    )


def max_subarray(rng: Random) -> Draft:
    name, things = _name_things(rng)
    n_max, low, high = _limits(rng, signed=True)
    legend = rng.choice(
        [
            f"{name} tracks the daily profit a_i of a stall at {rng.choice(PLACES)} for N days (losses are "
            "negative). Find the largest total profit over a non-empty run of consecutive days.",
            "Given an array of N integers, find the maximum sum of a non-empty contiguous subarray.",
            f"A path has N tiles; stepping on tile i changes {name}'s score by a_i. Choose a non-empty "
            "block of consecutive tiles with the largest total change and print that total.",
        ]
    )

    def cases(r: Random, small: bool) -> tuple[str, str]:
        n = _size(r, small, n_max)
        a = _values(r, n, low, high, small)
        if r.random() < 0.25:
            a = [-abs(x) - 1 for x in a]
        best = max(sum(a[i:j]) for i in range(n) for j in range(i + 1, n + 1))
        return _list_input(n, a), f"{best}\n"

    def program(start: str) -> str:
        return _program(
            *_READ_LIST,
            f"best = {start}",
            "cur = 0",
            "for x in a:",
            "    cur = max(x, cur + x)",
            "    best = max(best, cur)",
            "print(best)",
        )

    return Draft(
        title=rng.choice(["Best Streak", "Maximum Segment", f"{name}'s Profit", "Lucky Tiles"]),
        legend=legend,
        input_format=_LIST_FORMAT,
        output_format="Print the maximum sum of a non-empty contiguous segment.",
        constraints=(f"1 <= N <= {_pow10(n_max)}", f"{_pow10(low)} <= a_i <= {_pow10(high)}"),
        cases=cases,
        edge_cases=((_list_input(3, [-5, -2, -7]), "-2\n"),),
        code=program("a[0]"),
        buggy_code=program("0"),
        plan=Plan(
            goal="print the largest sum of a non-empty contiguous segment",
            method="use Kadane's algorithm",
            key="start best at a[0], keep cur = max(x, cur + x) and update best with cur",
            buggy_key="start best at 0, keep cur = max(x, cur + x) and update best with cur",
            edge="all values can be negative, and the segment must not be empty",
            complexity="O(N) time",
            implementation="loop over a once and print best",
        ),
    )


FAMILIES: tuple[Family, ...] = (
    Family("sum_list", 1, sum_list),
    Family("max_min", 1, max_min),
    Family("count_matches", 1, count_matches),
    Family("reverse_string", 1, reverse_string),
    Family("palindrome", 1, palindrome),
    Family("gcd_lcm", 2, gcd_lcm),
    Family("prefix_sums", 2, prefix_sums),
    Family("sort_twist", 2, sort_twist),
    Family("most_frequent", 2, most_frequent),
    Family("kth_smallest", 2, kth_smallest),
    Family("pair_sum", 3, pair_sum),
    Family("climb_stairs", 3, climb_stairs),
    Family("grid_paths", 3, grid_paths),
    Family("bracket_balance", 3, bracket_balance),
    Family("max_subarray", 3, max_subarray),
)
