"""MMMU open answers: parsed candidates by default, characters in compat."""

from medmo_agent.evaluation.mmmu import judge_open, normalize, parse_open_response


def test_normalize():
    assert normalize(" 1,234.567 ") == [1234.57]
    assert normalize("A") == [" a", "a "]
    assert normalize("Pneumonia") == ["pneumonia"]


def test_parse_open_response_keeps_the_shortest_tail_and_numbers():
    assert parse_open_response("The answer is 5.") == [5.0]
    assert "pneumonia" in parse_open_response("It is pneumonia")


def test_open_answers_correct_vs_character_iteration():
    assert judge_open("5", "The answer is 5.") is True
    assert judge_open("5", "The answer is 5.", compat="medevalkit") is False
    assert judge_open("pneumonia", "It is pneumonia") is True
    assert judge_open("pneumonia", "It is pneumonia", compat="medevalkit") is False
    assert judge_open(["4", "four"], "so four") is True
    assert judge_open("6", "The answer is 5.") is False
