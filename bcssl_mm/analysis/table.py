"""The text table of the analysis tools: rows of cells -> aligned lines."""
from typing import Any, Sequence, Union

STYLES = ('plain', 'grid', 'markdown')


def format_table(header: Sequence[Any],
                 rows: Sequence[Sequence[Any]],
                 align: Union[str, Sequence[str]] = '<',
                 style: str = 'plain',
                 notes: Sequence[str] = ()) -> str:
    """Format ``header`` and ``rows`` as a table of aligned columns.

    ``plain`` separates cells by `` | `` and the header from the rows by a
    ``-+-`` rule, trailing blanks stripped::

        model | img/s
        ------+------
        a     | 1.0

    ``grid`` boxes every cell, with rules above and below the header and
    below the rows::

        +-------+-------+
        | model | img/s |
        +-------+-------+
        |     a |   1.0 |
        +-------+-------+

    ``markdown`` is a GitHub-flavoured Markdown table, the rule under the
    header carrying each column's alignment and ``|`` inside a cell escaped
    as ``\\|``::

        | model | img/s |
        |-------|------:|
        | a     |   1.0 |

    Args:
        header (Sequence): Column titles.
        rows (Sequence[Sequence]): Cells, as many per row as titles; a cell
            is printed with ``str``, None as ``-``.
        align (str | Sequence[str]): ``'<'`` (left) or ``'>'`` (right), for
            every column or one per column. Defaults to ``'<'``.
        style (str): ``'plain'``, ``'grid'`` or ``'markdown'``. Defaults to
            ``'plain'``.
        notes (Sequence[str]): Lines printed below the table (after a blank
            line in ``markdown``).

    Returns:
        str: The table, lines joined by ``\\n``.
    """
    if style not in STYLES:
        raise ValueError(f'table style {style!r} is not one of {STYLES}')
    aligns = [align] * len(header) if isinstance(align, str) else list(align)
    if len(aligns) != len(header) or not set(aligns) <= {'<', '>'}:
        raise ValueError(f'align {align!r}: give "<" or ">", once or per '
                         f'column of {len(header)}')
    cells = [['-' if c is None else str(c) for c in row]
             for row in [header, *rows]]
    if style == 'markdown':
        cells = [[c.replace('|', r'\|') for c in row] for row in cells]
    for i, row in enumerate(cells[1:]):
        if len(row) != len(header):
            raise ValueError(f'table row {i} has {len(row)} cells, the '
                             f'header {len(header)}: {row}')
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [[format(c, f'{a}{w}') for c, a, w in zip(row, aligns, widths)]
             for row in cells]
    if style == 'plain':
        out = [' | '.join(line).rstrip() for line in lines]
        out.insert(1, '-+-'.join('-' * w for w in widths))
    elif style == 'markdown':
        out = ['| ' + ' | '.join(line) + ' |' for line in lines]
        # a colon on the right of the rule aligns the column right
        rule = '|' + '|'.join('-' * (w + 1) + (':' if a == '>' else '-')
                              for a, w in zip(aligns, widths)) + '|'
        out.insert(1, rule)
        if notes:
            # GFM reads a text line right below a table as one more row
            out.append('')
    else:
        rule = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'
        out = ['| ' + ' | '.join(line) + ' |' for line in lines]
        out = [rule, out[0], rule, *out[1:], rule]
    return '\n'.join(out + list(notes))
