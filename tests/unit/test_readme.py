"""The README's config reference is the generated one: it cannot drift."""

from pathlib import Path

from supervisors.config_doc import markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_lists_every_config_key_as_generated() -> None:
    assert markdown() in README.read_text()


def test_readme_opens_with_the_two_commands() -> None:
    head = README.read_text()[:1500]
    assert "make run" in head and "make test" in head
