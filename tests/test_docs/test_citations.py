"""Citations of the reference notes point into the repository: a newcomer
follows README -> docs -> code without anything outside the clone."""
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECTION = re.compile(r'recipes(?:\.md)? §(\d+)', re.IGNORECASE)


def _tracked_text_files():
    names = subprocess.run(['git', 'ls-files'],
                           cwd=ROOT,
                           capture_output=True,
                           text=True,
                           check=True).stdout.split()
    for name in names:
        if name == 'tests/test_docs/test_citations.py':
            continue  # names the patterns it looks for
        if name.endswith(('.py', '.md', '.sh', '.cfg', '.txt')) or \
                name in ('Makefile', ):
            yield name, (ROOT / name).read_text(errors='replace')


def test_no_citation_of_notes_outside_the_repository():
    # the notes this project was started from are not in the clone
    offenders = [
        name for name, text in _tracked_text_files()
        if 'RECIPES.md' in text or 'shared/reference' in text
    ]
    assert offenders == []


def test_every_cited_recipes_section_exists():
    recipes = (ROOT / 'docs' / 'recipes.md').read_text()
    sections = set(re.findall(r'^#+ §?(\d+)[.)]? ', recipes, re.MULTILINE))
    cited = {(name, number)
             for name, text in _tracked_text_files()
             for number in SECTION.findall(text)}
    assert cited, 'no citation found: the pattern is wrong'
    missing = sorted((name, n) for name, n in cited if n not in sections)
    assert missing == []
