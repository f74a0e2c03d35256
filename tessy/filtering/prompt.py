"""The contest-judge prompt, shared by the LLM filter and the microworld teacher's training data."""

JUDGE_VERSION = "contest-judge-v1"

_TEMPLATE = """Is the following question a competitive-programming problem, i.e. a task that asks for \
a program reading a specified input and printing a specified output?
Answer on one line, starting with "yes:" or "no:" followed by a short reason.

Question:
{question}"""


def judge_prompt(question: str) -> str:
    """The user message that asks a model to judge one question."""
    return _TEMPLATE.format(question=question.strip())
